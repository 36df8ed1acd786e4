// Package nginx shifts a Rollout's traffic with ingress-nginx canary
// Ingresses (networking.k8s.io/v1). The stable Ingress stays as its owner
// wrote it; the Rollout creates and owns a canary Ingress,
// <stableIngress>-<rollout>-canary, with the stable Ingress's paths that
// send to the stable Service sent to the canary Service instead, and
// ingress-nginx's canary annotations: canary-weight for the weight,
// canary-by-header for a header route. ingress-nginx reports no status for
// the annotations, so a state counts as verified once the canary Ingress
// carries it.
package nginx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
)

// Prefix is ingress-nginx's annotation prefix.
const Prefix = "nginx.ingress.kubernetes.io/"

// The canary annotations the router manages.
const (
	AnnotationCanary          = Prefix + "canary"
	AnnotationWeight          = Prefix + "canary-weight"
	AnnotationWeightTotal     = Prefix + "canary-weight-total"
	AnnotationByHeader        = Prefix + "canary-by-header"
	AnnotationByHeaderValue   = Prefix + "canary-by-header-value"
	AnnotationByHeaderPattern = Prefix + "canary-by-header-pattern"
	// AnnotationHeaderRoute names the header route the canary Ingress
	// carries (ingress-nginx's annotations have no name for it).
	AnnotationHeaderRoute = "rollouts.drover.dev/header-route"
)

const (
	legacyIngressClass = "kubernetes.io/ingress.class"
	errMirror          = "setMirrorRoute is not supported by the nginx router"
	maxNameLength      = 253
	hashLength         = 10
	canarySuffix       = "-canary"
)

// Router is the ingress-nginx router of one Rollout.
type Router struct {
	client      client.Client
	reader      client.Reader
	svcs        traffic.Services
	stable      string
	canary      string
	rollout     string
	owner       metav1.OwnerReference
	annotations map[string]string
}

// New returns a router that splits the traffic of the Ingress
// stableIngress of svcs.Namespace with a canary Ingress owned by owner
// (the Rollout rollout), carrying annotations besides the managed ones (a
// key without a "/" is an ingress-nginx one). Ingresses are read with
// reader (uncached) and written with c.
func New(c client.Client, reader client.Reader, svcs traffic.Services, stableIngress, rollout string, owner metav1.OwnerReference, annotations map[string]string) *Router {
	return &Router{client: c, reader: reader, svcs: svcs, stable: stableIngress, canary: CanaryName(stableIngress, rollout),
		rollout: rollout, owner: owner, annotations: annotations}
}

// CanaryName is the name of the canary Ingress of a Rollout:
// <stableIngress>-<rollout>-canary, shortened with a hash when longer than
// a name may be.
func CanaryName(stableIngress, rollout string) string {
	name := stableIngress + "-" + rollout + canarySuffix
	if len(name) <= maxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:hashLength]
	keep := maxNameLength - len(canarySuffix) - hashLength - 1
	return strings.TrimRight(name[:keep], "-.") + "-" + h + canarySuffix
}

// Name implements traffic.Router.
func (r *Router) Name() string { return "nginx" }

// Apply implements traffic.Router: the canary Ingress is created, or
// rewritten, to carry state.
func (r *Router) Apply(ctx context.Context, state traffic.State) error {
	if len(state.MirrorRoutes) > 0 {
		return errors.New(errMirror)
	}
	managed, err := r.managedAnnotations(state)
	if err != nil {
		return err
	}
	var stable networkingv1.Ingress
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: r.stable}, &stable); err != nil {
		return fmt.Errorf("reading ingress %s: %w", r.stable, err)
	}
	want, err := r.desired(&stable, managed)
	if err != nil {
		return err
	}
	var cur networkingv1.Ingress
	err = r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: r.canary}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.client.Create(ctx, want); err != nil {
			return fmt.Errorf("creating canary ingress %s: %w", r.canary, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading canary ingress %s: %w", r.canary, err)
	}
	if !r.owns(&cur) {
		return fmt.Errorf("ingress %s exists and is not the canary ingress of rollout %s", r.canary, r.rollout)
	}
	patched := cur.DeepCopy()
	patched.Annotations = want.Annotations
	patched.Labels = maps.Clone(cur.Labels)
	if patched.Labels == nil {
		patched.Labels = map[string]string{}
	}
	maps.Copy(patched.Labels, want.Labels)
	patched.Spec = want.Spec
	if equality.Semantic.DeepEqual(&cur, patched) {
		return nil
	}
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(&cur, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating canary ingress %s: %w", r.canary, err)
	}
	return nil
}

// owns reports whether ing is this Rollout's canary Ingress.
func (r *Router) owns(ing *networkingv1.Ingress) bool {
	for _, o := range ing.OwnerReferences {
		if o.UID == r.owner.UID {
			return true
		}
	}
	return false
}

// managedAnnotations are the canary annotations that carry state.
func (r *Router) managedAnnotations(state traffic.State) (map[string]string, error) {
	out := map[string]string{
		AnnotationCanary:      "true",
		AnnotationWeight:      strconv.Itoa(int(state.Weight)),
		AnnotationWeightTotal: "100",
	}
	switch n := len(state.HeaderRoutes); {
	case n > 1:
		names := make([]string, n)
		for i, h := range state.HeaderRoutes {
			names[i] = h.Name
		}
		return nil, fmt.Errorf("the nginx router carries one header route at a time (ingress-nginx has one canary-by-header per canary ingress); the release asks for %d: %s",
			n, strings.Join(names, ", "))
	case n == 1:
		h := state.HeaderRoutes[0]
		if len(h.Match) != 1 {
			return nil, fmt.Errorf("header route %s: the nginx router matches exactly one header or cookie per route (ingress-nginx's canary-by-header), not %d", h.Name, len(h.Match))
		}
		m := h.Match[0]
		out[AnnotationByHeader] = m.Name
		if m.Regex != "" {
			out[AnnotationByHeaderPattern] = m.Regex
		} else {
			out[AnnotationByHeaderValue] = m.Exact
		}
		out[AnnotationHeaderRoute] = h.Name
	}
	return out, nil
}

// desired is the canary Ingress for the stable Ingress stable.
func (r *Router) desired(stable *networkingv1.Ingress, managed map[string]string) (*networkingv1.Ingress, error) {
	annotations := map[string]string{}
	if class, ok := stable.Annotations[legacyIngressClass]; ok {
		annotations[legacyIngressClass] = class
	}
	for k, v := range r.annotations {
		if !strings.Contains(k, "/") {
			k = Prefix + k
		}
		annotations[k] = v
	}
	if _, ok := managed[AnnotationHeaderRoute]; ok {
		// A header route replaces any canary-by-header of the user's.
		delete(annotations, AnnotationByHeader)
		delete(annotations, AnnotationByHeaderValue)
		delete(annotations, AnnotationByHeaderPattern)
	}
	maps.Copy(annotations, managed)
	var rules []networkingv1.IngressRule
	for _, rule := range stable.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != r.svcs.Stable {
				continue
			}
			p = *p.DeepCopy()
			p.Backend.Service.Name = r.svcs.Canary
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			rules = append(rules, networkingv1.IngressRule{Host: rule.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}})
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("ingress %s: no path sends traffic to service %s", r.stable, r.svcs.Stable)
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.svcs.Namespace, Name: r.canary,
			Labels:          map[string]string{rolloutsv1alpha1.LabelRollout: r.rollout},
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{r.owner},
		},
		Spec: networkingv1.IngressSpec{IngressClassName: stable.Spec.IngressClassName, Rules: rules},
	}, nil
}

// Observe implements traffic.Router: the weight and the header route the
// canary Ingress carries. Before the first Apply there is none: weight 0
// (ingress-nginx sends everything to the stable Ingress), unverified.
func (r *Router) Observe(ctx context.Context) (traffic.Observed, error) {
	var out traffic.Observed
	var ing networkingv1.Ingress
	err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.svcs.Namespace, Name: r.canary}, &ing)
	switch {
	case apierrors.IsNotFound(err):
		return out, nil
	case err != nil:
		return out, fmt.Errorf("reading canary ingress %s: %w", r.canary, err)
	}
	a := ing.Annotations
	if a[AnnotationCanary] != "true" {
		return out, nil // ingress-nginx serves it as a second main ingress, not a canary
	}
	w, _ := strconv.Atoi(a[AnnotationWeight])
	total := 100
	if t, err := strconv.Atoi(a[AnnotationWeightTotal]); err == nil && t > 0 {
		total = t
	}
	out.Weight = int32(min(max(w*100/total, 0), 100))
	if name := a[AnnotationHeaderRoute]; name != "" && a[AnnotationByHeader] != "" {
		out.Routes = []string{"header/" + name}
	}
	out.Verified = r.owns(&ing)
	return out, nil
}
