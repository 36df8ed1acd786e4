package manager

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/ownership"
	"github.com/drover-dev/drover/internal/testenv"
)

// The manager's client lists a controller's pods from the informer's
// index, the cache's own objects, and finds what List finds.
func TestIndexedClientListsPodsFromTheIndex(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	opts, err := cacheOptions(newPodTrimmer(newInterner(64)))
	if err != nil {
		t.Fatal(err)
	}
	opts.Scheme = testenv.Scheme()
	ca, err := cache.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ownership.RegisterIndexes(ctx, ca); err != nil {
		t.Fatal(err)
	}
	c, err := newIndexedClient(env.Config, client.Options{Scheme: opts.Scheme, Cache: &client.CacheOptions{Reader: ca}})
	if err != nil {
		t.Fatal(err)
	}
	ic, ok := c.(*indexedClient)
	if !ok {
		t.Fatalf("client is a %T, want *indexedClient", c)
	}
	go func() { _ = ca.Start(ctx) }()

	ns := testenv.Namespace(t, c, "podindex")
	yes := true
	pod := func(name string, owner types.UID) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{appsv1alpha1.LabelWorkload: "CloneSet"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		if owner != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "cs-" + string(owner), UID: owner, Controller: &yes}}
		}
		return p
	}
	for _, p := range []*corev1.Pod{pod("a-1", "uid-a"), pod("a-2", "uid-a"), pod("b-1", "uid-b"), pod("orphan", "")} {
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	inf, err := ca.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	indexer := inf.(interface{ GetIndexer() toolscache.Indexer }).GetIndexer()
	if _, ok := indexer.GetIndexers()[controllerIndexName]; !ok {
		t.Fatalf("the pod informer has no index %q (controller-runtime's naming changed?): %v", controllerIndexName, indexer.GetIndexers())
	}
	names := func(pods []*corev1.Pod) []string {
		var out []string
		for _, p := range pods {
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	for uid, want := range map[string][]string{"uid-a": {"a-1", "a-2"}, "uid-b": {"b-1"}, "": {"orphan"}, "uid-none": nil} {
		testenv.Eventually(t, "pods of "+uid, func() (bool, string) {
			got, err := ownership.Pods(ctx, c, ns, uid)
			if err != nil {
				return false, err.Error()
			}
			listed, err := ownership.ListPods(ctx, ic.Client, ns, uid)
			if err != nil {
				return false, err.Error()
			}
			if !slices.Equal(names(got), want) || !slices.Equal(names(listed), want) {
				return false, "indexed " + strings.Join(names(got), " ") + ", listed " + strings.Join(names(listed), " ")
			}
			for _, p := range got {
				cached, ok, _ := indexer.GetByKey(ns + "/" + p.Name)
				if !ok || cached.(*corev1.Pod) != p {
					return false, p.Name + " is not the cache's own object"
				}
			}
			return true, ""
		})
	}
}
