package manager

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/ownership"
)

// controllerIndexName is the name controller-runtime gives the informer
// index of a field it was asked to index (IndexField), and
// controllerIndexKey the key it files an object under in a namespace.
// Both are controller-runtime's internal convention: when they stop
// matching, the index lookup fails and indexedClient falls back to List.
const controllerIndexName = "field:" + ownership.IndexController

func controllerIndexKey(namespace, uid string) string { return namespace + "/" + uid }

// indexedClient is the manager's client, plus ownership.PodIndexer: a
// workload's pods straight from the pod informer's index, the cache's own
// objects, where List would copy each pod's struct into a PodList (about
// 1 KiB a pod, a reconcile of a 1,000-pod workload making a MiB of
// garbage).
type indexedClient struct {
	client.Client
	cache cache.Cache
}

// newIndexedClient is the manager's NewClient.
func newIndexedClient(config *rest.Config, options client.Options) (client.Client, error) {
	c, err := client.New(config, options)
	if err != nil {
		return nil, fmt.Errorf("creating the client: %w", err)
	}
	if options.Cache == nil {
		return c, nil
	}
	ca, ok := options.Cache.Reader.(cache.Cache)
	if !ok {
		return c, nil
	}
	return &indexedClient{Client: c, cache: ca}, nil
}

func (c *indexedClient) PodsByController(ctx context.Context, namespace, controllerUID string) ([]*corev1.Pod, error) {
	inf, err := c.cache.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("getting the pod informer: %w", err)
	}
	ix, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return ownership.ListPods(ctx, c.Client, namespace, controllerUID)
	}
	objs, err := ix.GetIndexer().ByIndex(controllerIndexName, controllerIndexKey(namespace, controllerUID))
	if err != nil {
		return ownership.ListPods(ctx, c.Client, namespace, controllerUID)
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}
