// Package revision stores a workload's pod templates as ControllerRevisions,
// names them by hash, reuses an existing revision when a template returns to
// an earlier state, and prunes history.
//
// A revision's data is {"spec":{"template": <pod template>}}, the same shape
// the native StatefulSet and DaemonSet controllers use, so tools that read
// ControllerRevisions (kubectl rollout history) understand it.
package revision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
)

// LabelRevisionHash is the label carrying a pod's revision name. It is the
// label the native controllers use.
const LabelRevisionHash = appsv1.ControllerRevisionHashLabelKey

type templateData struct {
	Spec struct {
		Template *corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

// Data serialises a pod template into revision data.
func Data(template *corev1.PodTemplateSpec) ([]byte, error) {
	var d templateData
	d.Spec.Template = template
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding pod template: %w", err)
	}
	return b, nil
}

// Template decodes the pod template stored in a revision.
func Template(rev *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var d templateData
	if err := json.Unmarshal(rev.Data.Raw, &d); err != nil {
		return nil, fmt.Errorf("decoding revision %s: %w", rev.Name, err)
	}
	if d.Spec.Template == nil {
		return nil, fmt.Errorf("revision %s holds no pod template", rev.Name)
	}
	return d.Spec.Template, nil
}

// Hash returns the hash of revision data, salted by the collision count.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	_, _ = h.Write(data)
	if collisionCount != nil {
		_, _ = h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is the revision name for a parent and a hash.
func Name(parent string, hash string) string {
	return parent + "-" + hash
}

// New builds (without creating) the revision of template for parent.
func New(parent metav1.Object, gvk schema.GroupVersionKind, labels map[string]string, template *corev1.PodTemplateSpec, number int64, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	data, err := Data(template)
	if err != nil {
		return nil, err
	}
	hash := Hash(data, collisionCount)
	l := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		l[k] = v
	}
	name := Name(parent.GetName(), hash)
	l[LabelRevisionHash] = name
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       parent.GetNamespace(),
			Labels:          l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(parent, gvk)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}, nil
}

// Equal reports whether two revisions hold the same template.
func Equal(a, b *appsv1.ControllerRevision) bool {
	return bytes.Equal(a.Data.Raw, b.Data.Raw)
}

// FindEqual returns the revisions in history that hold the same template as rev.
func FindEqual(history []*appsv1.ControllerRevision, rev *appsv1.ControllerRevision) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, h := range history {
		if Equal(h, rev) {
			out = append(out, h)
		}
	}
	return out
}

// Sort orders revisions by revision number, then name, oldest first.
func Sort(history []*appsv1.ControllerRevision) {
	sort.SliceStable(history, func(i, j int) bool {
		if history[i].Revision != history[j].Revision {
			return history[i].Revision < history[j].Revision
		}
		return history[i].Name < history[j].Name
	})
}

// Next returns the revision number that follows the history.
func Next(history []*appsv1.ControllerRevision) int64 {
	var max int64
	for _, h := range history {
		if h.Revision > max {
			max = h.Revision
		}
	}
	return max + 1
}

// Prunable returns the revisions to delete to keep at most limit revisions
// that are not live. live holds the names of revisions still used by a pod
// or by the workload's status; they are never pruned. history must be sorted.
func Prunable(history []*appsv1.ControllerRevision, live map[string]bool, limit int) []*appsv1.ControllerRevision {
	var dead []*appsv1.ControllerRevision
	for _, h := range history {
		if !live[h.Name] {
			dead = append(dead, h)
		}
	}
	if len(dead) <= limit {
		return nil
	}
	return dead[:len(dead)-limit]
}
