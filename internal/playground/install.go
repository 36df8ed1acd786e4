package playground

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/config/crd"
	"github.com/drover-dev/drover/examples"
	"github.com/drover-dev/drover/internal/manager"
)

const (
	establishTimeout = time.Minute
	pollInterval     = 200 * time.Millisecond
)

func newClient(cfg *rest.Config) (client.Client, error) {
	scheme, err := manager.Scheme()
	if err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("playground: registering apiextensions types: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("playground: creating client: %w", err)
	}
	return c, nil
}

// installCRDs server-side applies the embedded CRDs and waits until each is
// Established. It returns how many it installed.
func installCRDs(ctx context.Context, c client.Client) (int, error) {
	crds, err := crd.All()
	if err != nil {
		return 0, fmt.Errorf("playground: %w", err)
	}
	for _, x := range crds {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(x)
		if err != nil {
			return 0, fmt.Errorf("playground: converting CRD %s: %w", x.Name, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return 0, fmt.Errorf("playground: applying CRD %s: %w", x.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, establishTimeout)
	defer cancel()
	for _, x := range crds {
		if err := poll(ctx, func() (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: x.Name}, got); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return 0, fmt.Errorf("playground: CRD %s not established: %w", x.Name, err)
		}
	}
	return len(crds), nil
}

// applyDemo server-side applies examples/cloneset.yaml in DemoNamespace.
// The API server may take a moment to serve a just-established CRD, so
// "no matches for kind" is retried.
func applyDemo(ctx context.Context, c client.Client) error {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(examples.CloneSet(), &u.Object); err != nil {
		return fmt.Errorf("playground: decoding examples/cloneset.yaml: %w", err)
	}
	u.SetNamespace(DemoNamespace)
	ctx, cancel := context.WithTimeout(ctx, establishTimeout)
	defer cancel()
	var last error
	err := poll(ctx, func() (bool, error) {
		last = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner(fieldOwner), client.ForceOwnership)
		if last == nil {
			return true, nil
		}
		if meta.IsNoMatchError(last) || apierrors.IsNotFound(last) {
			return false, nil
		}
		return false, last
	})
	if err != nil {
		if last != nil && err != last {
			err = fmt.Errorf("%w (last: %v)", err, last)
		}
		return fmt.Errorf("playground: applying CloneSet %s/%s: %w", DemoNamespace, u.GetName(), err)
	}
	return nil
}

// waitDemoReady waits until the demo CloneSet is Ready for its current
// generation with every replica ready, and returns the replica count.
func waitDemoReady(ctx context.Context, c client.Client, timeout time.Duration, mgrDone chan error) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var replicas int32
	var state string
	err := poll(ctx, func() (bool, error) {
		select {
		case err := <-mgrDone:
			mgrDone <- err
			return false, fmt.Errorf("the manager stopped: %v", err)
		default:
		}
		cs := &appsv1alpha1.CloneSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: DemoName}, cs); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		replicas = 1
		if cs.Spec.Replicas != nil {
			replicas = *cs.Spec.Replicas
		}
		st := cs.Status
		state = fmt.Sprintf("%d/%d ready, observed generation %d of %d", st.ReadyReplicas, replicas, st.ObservedGeneration, cs.Generation)
		if c := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionReady); c != nil {
			state += fmt.Sprintf(", Ready=%s %s: %s", c.Status, c.Reason, c.Message)
		}
		return st.ObservedGeneration == cs.Generation && st.ReadyReplicas == replicas && st.AvailableReplicas == replicas &&
			meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionReady), nil
	})
	if err != nil {
		return 0, fmt.Errorf("playground: CloneSet %s/%s not ready (%s): %w", DemoNamespace, DemoName, state, err)
	}
	return replicas, nil
}

// poll calls f every pollInterval until it returns true or an error, or ctx ends.
func poll(ctx context.Context, f func() (bool, error)) error {
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
