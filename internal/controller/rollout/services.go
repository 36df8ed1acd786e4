package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/internal/traffic"
)

// serviceNames are the stable and canary Services of a Rollout: the ones
// its spec names, or <rollout>-stable and <rollout>-canary, which it owns;
// for blue-green, the active and the (optional) preview Service.
func serviceNames(ro *rolloutsv1alpha1.Rollout) traffic.Services {
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		return traffic.Services{Namespace: ro.Namespace, Stable: bg.ActiveService, Canary: bg.PreviewService}
	}
	c := ro.Spec.Strategy.Canary
	s := traffic.Services{Namespace: ro.Namespace, Stable: ro.Name + "-stable", Canary: ro.Name + "-canary"}
	if c != nil && c.StableService != "" {
		s.Stable = c.StableService
	}
	if c != nil && c.CanaryService != "" {
		s.Canary = c.CanaryService
	}
	return s
}

// owned reports whether the Rollout creates the named Service.
func owned(ro *rolloutsv1alpha1.Rollout, name string) bool {
	c := ro.Spec.Strategy.Canary
	return c != nil && name != c.StableService && name != c.CanaryService
}

// syncService points a Service at the workload's pods of one revision. A
// Service the Rollout owns is created (ports from the pod template) and
// its selector set whole; a user's Service keeps its selector and gets the
// revision label added. Services are read from the API, not a cache: the
// manager caches no Services.
func (r *Reconciler) syncService(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w *target.Workload, name, rev string) error {
	if name == "" {
		return nil // blue-green without a preview Service
	}
	var svc corev1.Service
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &svc)
	switch {
	case apierrors.IsNotFound(err) && owned(ro, name):
		return r.createService(ctx, ro, w, name, rev)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("service %s not found: create it or leave the field empty for the rollout to create one", name)
	case err != nil:
		return fmt.Errorf("reading service %s: %w", name, err)
	}
	if svc.Spec.Selector[w.RevisionLabel] == rev {
		if !owned(ro, name) {
			return nil
		}
		want := selectorFor(w, rev)
		if maps.Equal(svc.Spec.Selector, want) {
			return nil
		}
	}
	selector := map[string]any{w.RevisionLabel: rev}
	if owned(ro, name) {
		for k, v := range w.PodLabels {
			selector[k] = v
		}
	}
	return r.patchSelector(ctx, &svc, selector)
}

// releaseService removes the revision label from a user's Service (the
// Rollout is being deleted); owned Services are deleted with the Rollout.
func (r *Reconciler) releaseService(ctx context.Context, ro *rolloutsv1alpha1.Rollout, name, revisionLabel string) error {
	if name == "" || owned(ro, name) {
		return nil
	}
	var svc corev1.Service
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &svc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, ok := svc.Spec.Selector[revisionLabel]; !ok {
		return nil
	}
	return r.patchSelector(ctx, &svc, map[string]any{revisionLabel: nil})
}

func (r *Reconciler) patchSelector(ctx context.Context, svc *corev1.Service, selector map[string]any) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"selector": selector}})
	if err != nil {
		return fmt.Errorf("encoding the selector patch: %w", err)
	}
	if err := r.Client.Patch(ctx, svc, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("pointing service %s at its revision: %w", svc.Name, err)
	}
	return nil
}

func (r *Reconciler) createService(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w *target.Workload, name, rev string) error {
	ports := servicePorts(w)
	if len(ports) == 0 {
		return fmt.Errorf("service %s: the workload's containers declare no ports; give canary.stableService and canary.canaryService", name)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: name,
			Labels: map[string]string{rolloutsv1alpha1.LabelRollout: ro.Name}},
		Spec: corev1.ServiceSpec{Selector: selectorFor(w, rev), Ports: ports},
	}
	if err := controllerutil.SetControllerReference(ro, svc, r.Client.Scheme()); err != nil {
		return fmt.Errorf("owning service %s: %w", name, err)
	}
	if err := r.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service %s: %w", name, err)
	}
	return nil
}

func selectorFor(w *target.Workload, rev string) map[string]string {
	sel := maps.Clone(w.PodLabels)
	if sel == nil {
		sel = map[string]string{}
	}
	sel[w.RevisionLabel] = rev
	return sel
}

// servicePorts are the TCP/UDP ports the workload's containers declare.
func servicePorts(w *target.Workload) []corev1.ServicePort {
	if w.Template == nil {
		return nil
	}
	var out []corev1.ServicePort
	seen := map[string]bool{}
	for _, c := range w.Template.Spec.Containers {
		for _, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			key := fmt.Sprintf("%d/%s", p.ContainerPort, proto)
			if seen[key] {
				continue
			}
			seen[key] = true
			name := p.Name
			if name == "" && len(out) > 0 {
				name = fmt.Sprintf("port-%d", p.ContainerPort)
			}
			out = append(out, corev1.ServicePort{Name: name, Port: p.ContainerPort, Protocol: proto, TargetPort: intstr.FromInt32(p.ContainerPort)})
		}
	}
	if len(out) > 1 && out[0].Name == "" {
		out[0].Name = fmt.Sprintf("port-%d", out[0].Port)
	}
	return out
}
