package sidecarset

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/drover-dev/drover/test/e2e/framework"
)

// watcher sees every pod event of a namespace and checks an invariant on
// the pods as they are after each event: it observes every state the API
// server went through, not samples.
type watcher struct {
	*framework.PodRecorder
	peak int // largest value check returned, under the recorder's lock
}

func watchPods(t *testing.T, ns string, check func(map[string]*corev1.Pod) (int, error)) *watcher {
	t.Helper()
	w := &watcher{}
	w.PodRecorder = framework.RecordPods(t, ns, func(_ framework.PodEvent, pods map[string]*corev1.Pod) error {
		n, err := check(pods)
		w.peak = max(w.peak, n)
		return err
	})
	return w
}

// done stops watching and fails the test on any violation; it returns the
// peak value the check reported.
func (w *watcher) done(t *testing.T) (peak int) {
	t.Helper()
	w.Stop()
	w.AssertNoViolations(t)
	w.Locked(func() { peak = w.peak })
	return peak
}
