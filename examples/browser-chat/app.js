// Browser chat for socket-server. Plain JS, no build step; `io` comes from the
// socket.io-client browser bundle loaded before this script.
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const serverUrl = params.get("server") || "http://localhost:8081";
  const room = params.get("room") || "lobby";
  const defaultName = params.get("name") || "guest-" + Math.random().toString(36).slice(2, 6);

  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const els = {
    server: $("server-url"),
    state: $("connection-state"),
    transport: $("transport"),
    history: $("transport-history"),
    room: $("room"),
    roomState: $("room-state"),
    error: $("error"),
    messages: $("messages"),
    form: $("send-form"),
    name: $("name-input"),
    input: $("message-input"),
    send: $("send-button"),
  };

  els.server.textContent = serverUrl;
  els.room.textContent = room;
  els.name.value = defaultName;

  const transportHistory = [];

  function setState(state) {
    els.state.textContent = state;
    els.state.dataset.state = state;
    els.send.disabled = state !== "connected";
  }

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = !message;
  }

  function recordTransport(name) {
    transportHistory.push(name);
    els.transport.textContent = name;
    els.history.textContent = transportHistory.join(" → ");
    els.history.dataset.history = JSON.stringify(transportHistory);
  }

  function addMessage(msg) {
    const li = document.createElement("li");
    li.dataset.testid = "message";
    const from = document.createElement("span");
    from.className = "from";
    from.dataset.testid = "message-from";
    from.textContent = String(msg && msg.from != null ? msg.from : "anonymous");
    const text = document.createElement("span");
    text.className = "text";
    text.dataset.testid = "message-text";
    text.textContent = String(msg && msg.text != null ? msg.text : "");
    li.append(from, text);
    appendItem(li);
  }

  function addSystem(text) {
    const li = document.createElement("li");
    li.className = "system";
    li.dataset.testid = "system-message";
    li.textContent = text;
    appendItem(li);
  }

  function appendItem(li) {
    const atBottom = els.messages.scrollTop + els.messages.clientHeight >= els.messages.scrollHeight - 4;
    els.messages.append(li);
    if (atBottom) els.messages.scrollTop = els.messages.scrollHeight;
  }

  if (typeof io !== "function") {
    setState("error");
    showError("socket.io-client bundle not loaded (run `npm ci` in examples/browser-chat)");
    return;
  }

  // Default transports: starts on HTTP long-polling, then upgrades to WebSocket.
  const socket = io(serverUrl, { reconnectionDelayMax: 3000 });
  window.chatSocket = socket; // handy in the devtools console

  // A new Engine.IO connection is opened on every (re)connect: track its transport and upgrade.
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    recordTransport(engine.transport.name);
    engine.on("upgrade", (transport) => recordTransport(transport.name));
  });

  socket.on("connect", () => {
    setState("connected");
    showError("");
    els.roomState.textContent = "joining…";
    els.roomState.dataset.state = "joining";
    socket.timeout(5000).emit("join", room, (err, res) => {
      if (err || !res || res.ok !== true) {
        els.roomState.textContent = "join failed";
        els.roomState.dataset.state = "failed";
        showError("could not join room: " + (err ? err.message : JSON.stringify(res)));
        return;
      }
      els.roomState.textContent = "joined";
      els.roomState.dataset.state = "joined";
      addSystem(`joined room "${room}"`);
    });
  });

  socket.on("disconnect", (reason) => {
    setState("disconnected");
    els.roomState.textContent = "not joined";
    els.roomState.dataset.state = "left";
    addSystem("disconnected: " + reason);
  });

  socket.on("connect_error", (err) => {
    setState("disconnected");
    showError("connect error: " + err.message);
  });

  // The server sends every room message to all members, the sender included,
  // so our own messages show up here too.
  socket.on("chat:message", (msg) => {
    if (msg && msg.room === room) addMessage(msg);
  });

  els.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = els.input.value.trim();
    if (!text || !socket.connected) return;
    socket.emit("chat:message", { room, text, from: els.name.value.trim() || defaultName });
    els.input.value = "";
    els.input.focus();
  });
})();
