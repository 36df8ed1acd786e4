package podcontrol

import (
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/revision"
)

// Templates decodes revision templates once per reconcile and caches the
// in-place change from each revision to the update revision. Parallel pod
// workers use it, so its caches are guarded.
type Templates struct {
	byName map[string]*appsv1.ControllerRevision
	update *appsv1.ControllerRevision

	mu     sync.Mutex
	cache  map[string]*corev1.PodTemplateSpec
	change map[[2]string]inplace.Change
}

// NewTemplates indexes history; update is the revision pods move to.
func NewTemplates(history []*appsv1.ControllerRevision, update *appsv1.ControllerRevision) *Templates {
	t := &Templates{
		byName: make(map[string]*appsv1.ControllerRevision, len(history)+1),
		update: update,
		cache:  map[string]*corev1.PodTemplateSpec{},
		change: map[[2]string]inplace.Change{},
	}
	for _, h := range history {
		t.byName[h.Name] = h
	}
	t.byName[update.Name] = update
	return t
}

// Update is the update revision.
func (t *Templates) Update() *appsv1.ControllerRevision { return t.update }

// Revision returns the named revision of the history.
func (t *Templates) Revision(name string) (*appsv1.ControllerRevision, bool) {
	r, ok := t.byName[name]
	return r, ok
}

// Template returns the decoded template of the named revision. Callers
// must not modify it.
func (t *Templates) Template(name string) (*corev1.PodTemplateSpec, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.templateLocked(name)
}

func (t *Templates) templateLocked(name string) (*corev1.PodTemplateSpec, error) {
	if tpl, ok := t.cache[name]; ok {
		return tpl, nil
	}
	rev, ok := t.byName[name]
	if !ok {
		return nil, fmt.Errorf("revision %s not found", name)
	}
	tpl, err := revision.Template(rev)
	if err != nil {
		return nil, err
	}
	t.cache[name] = tpl
	return tpl, nil
}

// ChangeTo returns the change from the named revision to the update
// revision; a pod whose revision is unknown (pruned or foreign) cannot go
// in place.
func (t *Templates) ChangeTo(name string) inplace.Change {
	return t.Change(name, t.update.Name)
}

// Change returns the change from one revision to another (a rollout moves
// pods back to its stable revision, not only forward to the update
// revision). A revision missing from history cannot be reached in place.
func (t *Templates) Change(from, to string) inplace.Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := [2]string{from, to}
	if c, ok := t.change[key]; ok {
		return c
	}
	c := inplace.Change{Blocker: "revision " + from + " is no longer in history"}
	if src, err := t.templateLocked(from); err == nil {
		c = inplace.Change{Blocker: "revision " + to + " is no longer in history"}
		if dst, err := t.templateLocked(to); err == nil {
			c = inplace.Diff(src, dst)
		}
	}
	t.change[key] = c
	return c
}
