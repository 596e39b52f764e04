package sdk

import (
	"context"

	"google.golang.org/grpc"

	pb "github.com/socketfleet/socketfleet/sdk/internal/pluginpb"
)

// metricsServer adapts a MetricsExporter to the Metrics service.
type metricsServer struct {
	pb.UnimplementedMetricsServer
	impl MetricsExporter
}

func registerMetrics(s *grpc.Server, impl MetricsExporter) {
	pb.RegisterMetricsServer(s, &metricsServer{impl: impl})
}

func (s *metricsServer) Render(ctx context.Context, in *pb.MetricsSnapshot) (*pb.Exposition, error) {
	snap := snapshotFromPB(in)
	ct, body, err := s.impl.Render(ctx, snap)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Exposition{ContentType: ct, Body: body}, nil
}

// metricsClient is the host's MetricsExporter over the Metrics service.
type metricsClient struct {
	*lifecycleClient
	rpc pb.MetricsClient
}

var _ MetricsExporter = (*metricsClient)(nil)

func newMetricsClient(lc *lifecycleClient, conn grpc.ClientConnInterface) *metricsClient {
	return &metricsClient{lifecycleClient: lc, rpc: pb.NewMetricsClient(conn)}
}

// Render sends one snapshot and returns the plugin's exposition: one unary
// call per scrape.
func (c *metricsClient) Render(ctx context.Context, snap *MetricsSnapshot) (string, []byte, error) {
	in := snapshotToPB(snap)
	out, err := c.rpc.Render(ctx, in, callOpts...)
	if err != nil {
		return "", nil, fromStatus(KindMetrics, "Render", err)
	}
	return out.GetContentType(), out.GetBody(), nil
}

// snapshotToPB converts a snapshot for the wire; slices are shared.
func snapshotToPB(snap *MetricsSnapshot) *pb.MetricsSnapshot {
	in := &pb.MetricsSnapshot{}
	if snap == nil {
		return in
	}
	in.Counters = samplesToPB(snap.Counters)
	in.Gauges = samplesToPB(snap.Gauges)
	if len(snap.Histograms) > 0 {
		hs := make([]pb.MetricHistogram, len(snap.Histograms))
		in.Histograms = make([]*pb.MetricHistogram, len(snap.Histograms))
		for i, h := range snap.Histograms {
			hs[i].Name, hs[i].Help = h.Name, h.Help
			hs[i].Labels = labelsToPB(h.Labels)
			hs[i].Bounds, hs[i].Counts = h.Bounds, h.Counts
			hs[i].Count, hs[i].Sum = h.Count, h.Sum
			in.Histograms[i] = &hs[i]
		}
	}
	return in
}

// snapshotFromPB converts a received snapshot.
func snapshotFromPB(in *pb.MetricsSnapshot) *MetricsSnapshot {
	snap := &MetricsSnapshot{
		Counters: samplesFromPB(in.GetCounters()),
		Gauges:   samplesFromPB(in.GetGauges()),
	}
	if hs := in.GetHistograms(); len(hs) > 0 {
		snap.Histograms = make([]MetricHistogram, len(hs))
		for i, h := range hs {
			snap.Histograms[i] = MetricHistogram{
				Name:   h.GetName(),
				Help:   h.GetHelp(),
				Labels: labelsFromPB(h.GetLabels()),
				Bounds: h.GetBounds(),
				Counts: h.GetCounts(),
				Count:  h.GetCount(),
				Sum:    h.GetSum(),
			}
		}
	}
	return snap
}

func samplesToPB(ss []MetricSample) []*pb.MetricSample {
	if len(ss) == 0 {
		return nil
	}
	vals := make([]pb.MetricSample, len(ss))
	out := make([]*pb.MetricSample, len(ss))
	for i, s := range ss {
		vals[i].Name, vals[i].Help, vals[i].Value = s.Name, s.Help, s.Value
		vals[i].Labels = labelsToPB(s.Labels)
		out[i] = &vals[i]
	}
	return out
}

func samplesFromPB(ss []*pb.MetricSample) []MetricSample {
	if len(ss) == 0 {
		return nil
	}
	out := make([]MetricSample, len(ss))
	for i, s := range ss {
		out[i] = MetricSample{Name: s.GetName(), Help: s.GetHelp(), Labels: labelsFromPB(s.GetLabels()), Value: s.GetValue()}
	}
	return out
}

func labelsToPB(ls []MetricLabel) []*pb.MetricLabel {
	if len(ls) == 0 {
		return nil
	}
	vals := make([]pb.MetricLabel, len(ls))
	out := make([]*pb.MetricLabel, len(ls))
	for i, l := range ls {
		vals[i].Name, vals[i].Value = l.Name, l.Value
		out[i] = &vals[i]
	}
	return out
}

func labelsFromPB(ls []*pb.MetricLabel) []MetricLabel {
	if len(ls) == 0 {
		return nil
	}
	out := make([]MetricLabel, len(ls))
	for i, l := range ls {
		out[i] = MetricLabel{Name: l.GetName(), Value: l.GetValue()}
	}
	return out
}
