package podcontrol

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/drover-dev/drover/internal/inplace"
)

func statePod(uid, annotation, raw string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: k8stypes.UID("u-" + uid)}}
	if annotation != "" {
		p.Annotations = map[string]string{annotation: raw}
	}
	return p
}

func TestStateCacheTracks(t *testing.T) {
	workload := inplace.WorkloadTrack.Annotation()
	sidecar := inplace.SidecarTrack.Annotation()
	pods := []*corev1.Pod{
		statePod("a", workload, `{"revision":"r1","phase":"Updating"}`),
		statePod("b", sidecar, `{"revision":"s1","phase":"Draining"}`),
		statePod("c", "", ""),
		statePod("d", workload, `not json`),
	}
	got := NewStateCache().States("ns/w", pods)
	if !got[0].OK || got[0].State.Revision != "r1" || got[0].State.Phase != inplace.PhaseUpdating {
		t.Errorf("workload track, pod a: %+v", got[0])
	}
	if got[1].OK || got[2].OK || got[3].OK {
		t.Errorf("workload track read another track's, a missing or an invalid state: %+v %+v %+v", got[1], got[2], got[3])
	}
	side := NewTrackStateCache(inplace.SidecarTrack).States("s", pods)
	if side[0].OK || !side[1].OK || side[1].State.Revision != "s1" {
		t.Errorf("sidecar track: %+v %+v", side[0], side[1])
	}
}

// An unchanged annotation is not decoded again; a changed one is.
func TestStateCacheReusesParsedStates(t *testing.T) {
	c := NewStateCache()
	ann := inplace.WorkloadTrack.Annotation()
	p := statePod("a", ann, `{"revision":"r1","phase":"Updating"}`)
	first := c.States("o", []*corev1.Pod{p})
	// Same raw value: the cached parse comes back even if decoding it now
	// would give something else (proved by tampering with the cache).
	c.byOwner["o"].byUID[p.UID] = ParsedState{Raw: first[0].Raw, State: inplace.State{Revision: "cached"}, OK: true}
	if again := c.States("o", []*corev1.Pod{p}); again[0].State.Revision != "cached" {
		t.Fatalf("unchanged annotation decoded again: %+v", again[0])
	}
	p.Annotations[ann] = `{"revision":"r2","phase":"Done"}`
	if changed := c.States("o", []*corev1.Pod{p}); changed[0].State.Revision != "r2" {
		t.Fatalf("changed annotation not decoded: %+v", changed[0])
	}
	c.Forget("o")
	if _, ok := c.byOwner["o"]; ok {
		t.Fatal("Forget kept the owner's states")
	}
}

// A pod the owner no longer lists (deleted, released) or whose
// annotation is gone leaves the cache at the owner's next reconcile.
func TestStateCacheDropsPodsNoLongerSeen(t *testing.T) {
	c := NewStateCache()
	ann := inplace.WorkloadTrack.Annotation()
	a, b := statePod("a", ann, `{"revision":"r1","phase":"Updating"}`), statePod("b", ann, `{"revision":"r1","phase":"Done"}`)
	c.States("o", []*corev1.Pod{a, b})
	if n := len(c.byOwner["o"].byUID); n != 2 {
		t.Fatalf("%d states kept, want 2", n)
	}
	got := c.States("o", []*corev1.Pod{b})
	if n := len(c.byOwner["o"].byUID); n != 1 || got[0].State.Revision != "r1" || !got[0].OK {
		t.Fatalf("%d states kept (want 1), b's %+v", n, got[0])
	}
	delete(b.Annotations, ann)
	if got := c.States("o", []*corev1.Pod{b}); got[0].OK || len(c.byOwner["o"].byUID) != 0 {
		t.Fatalf("state without annotation: %+v, %d kept", got[0], len(c.byOwner["o"].byUID))
	}
}
