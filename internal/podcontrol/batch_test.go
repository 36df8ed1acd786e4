package podcontrol

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func TestSlowStart(t *testing.T) {
	items := make([]int, 20)
	for i := range items {
		items[i] = i
	}
	cases := []struct {
		name      string
		limit     int
		failAt    int // item that fails, -1 none
		wantDone  int
		wantCalls int
	}{
		{"all succeed: batches 1 2 4 then the rest", 4, -1, 20, 20},
		{"the first item fails: nothing more", 4, 0, 1, 1},
		{"a failure in the batch of 4 stops after it", 8, 5, 7, 7},
		{"limit larger than the items", 64, -1, 20, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []int
			done, err := SlowStart(context.Background(), tc.limit, items, func(_ context.Context, i int) error {
				mu.Lock()
				calls = append(calls, i)
				mu.Unlock()
				if i == tc.failAt {
					return errors.New("refused")
				}
				return nil
			})
			if (err != nil) != (tc.failAt >= 0) || done != tc.wantDone || len(calls) != tc.wantCalls {
				t.Fatalf("done %d calls %d err %v", done, len(calls), err)
			}
			slices.Sort(calls)
			for i, c := range calls {
				if c != i {
					t.Fatalf("items handed out of order or twice: %v", calls)
				}
			}
		})
	}
}

// DeleteAllThen runs its follow-up only for the pods whose delete was
// issued: not for a pod the hook holds, nor for one already gone.
func TestDeleteAllThen(t *testing.T) {
	pod := func(name string, labels map[string]string) *corev1.Pod {
		labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStatePreparingDelete)
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("u-" + name), Labels: labels}}
	}
	free, held, gone := pod("free", map[string]string{}), pod("held", map[string]string{"hold": "yes"}), pod("gone", map[string]string{})
	c := fake.NewClientBuilder().WithObjects(free.DeepCopy(), held.DeepCopy()).Build()
	pc := New(c, clocktesting.NewFakePassiveClock(time.Now()), 4)
	hook := &appsv1alpha1.LifecycleHook{LabelsHandler: map[string]string{"hold": "yes"}}

	var mu sync.Mutex
	var followed []string
	n, err := pc.DeleteAllThen(context.Background(), "ns/w", []*corev1.Pod{free, held, gone}, hook, func(_ context.Context, p *corev1.Pod) error {
		mu.Lock()
		defer mu.Unlock()
		followed = append(followed, p.Name)
		return errors.New("claims refused")
	})
	if n != 1 || !slices.Equal(followed, []string{"free"}) {
		t.Fatalf("issued %d, followed %v: want 1 and [free]", n, followed)
	}
	if err == nil || !strings.Contains(err.Error(), "claims refused") {
		t.Fatalf("the follow-up's error must be returned, got %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(free), &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Fatalf("free pod not deleted: %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(held), &corev1.Pod{}); err != nil {
		t.Fatalf("held pod: %v", err)
	}
}
