server {
  cors {
    shout = true
  }
}
