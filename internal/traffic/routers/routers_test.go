package routers_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/istio"
	"github.com/drover-dev/drover/internal/traffic/nginx"
	"github.com/drover-dev/drover/internal/traffic/routers"
	"github.com/drover-dev/drover/internal/traffic/smi"
)

// These tests run the routers against a real API server (envtest) with
// minimal Istio and SMI CRDs: the unstructured objects the routers write
// must survive a real server's decoding, patches and generation counting.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{
		crd(istio.VirtualServiceGVK, "virtualservices"),
		crd(istio.DestinationRuleGVK, "destinationrules"),
		crd(smi.TrafficSplitGVK, "trafficsplits"),
	}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// crd is a namespaced CRD of one version that accepts any spec and status
// (with a status subresource, as Istio's have).
func crd(gvk schema.GroupVersionKind, plural string) *apiextensionsv1.CustomResourceDefinition {
	anything := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + gvk.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: gvk.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: gvk.Kind, ListKind: gvk.Kind + "List"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: gvk.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": anything, "status": anything},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

func namespace(t *testing.T, name string) {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func object(t *testing.T, ns string, gvk schema.GroupVersionKind, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	return u
}

func service(ns, name, rev string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web", "controller-revision-hash": rev},
		Ports:    []corev1.ServicePort{{Port: 80}},
	}}
}

func rollout(ns string, tr *rolloutsv1alpha1.TrafficRouting) *rolloutsv1alpha1.Rollout {
	return &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{
				StableService: "web-stable", CanaryService: "web-canary",
				Steps:          []rolloutsv1alpha1.CanaryStep{{SetWeight: ptr.To[int32](20)}},
				TrafficRouting: tr,
			}},
		},
	}
}

func TestEveryRouterAgainstTheAPIServer(t *testing.T) {
	const ns = "all-routers"
	ctx := context.Background()
	namespace(t, ns)
	pathType := networkingv1.PathTypePrefix
	create(t, service(ns, "web-stable", "aaa"), service(ns, "web-canary", "bbb"),
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			Rules: []networkingv1.IngressRule{{Host: "web.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pathType, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web-stable", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}},
		}},
		object(t, ns, istio.VirtualServiceGVK, `
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: primary
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: web, subset: stable, port: {number: 80}}}]
  - name: theirs
    route: [{destination: {host: other}}]
`),
		object(t, ns, istio.DestinationRuleGVK, `
metadata: {name: web}
spec:
  host: web
  subsets: [{name: stable, labels: {app: web}}]
`))
	ro := rollout(ns, &rolloutsv1alpha1.TrafficRouting{
		Istio: &rolloutsv1alpha1.IstioRouting{
			VirtualService:  rolloutsv1alpha1.IstioVirtualService{Name: "web"},
			DestinationRule: &rolloutsv1alpha1.IstioDestinationRule{Name: "web", StableSubsetName: "stable", CanarySubsetName: "canary"},
		},
		NGINX: &rolloutsv1alpha1.NGINXRouting{StableIngress: "web", AdditionalIngressAnnotations: map[string]string{"proxy-body-size": "8m"}},
		SMI:   &rolloutsv1alpha1.SMIRouting{RootService: "web"},
	})
	create(t, ro)

	svcs := traffic.Services{Namespace: ns, Stable: "web-stable", Canary: "web-canary"}
	rs, err := routers.Factory{Client: k8s, Reader: k8s}.For(ro, svcs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Name())
	}
	if !slices.Equal(got, []string{"istio", "nginx", "smi"}) {
		t.Fatalf("routers %v", got)
	}
	for _, w := range []int32{20, 20, 0} { // the second 20: idempotent on a real server too
		for _, r := range rs {
			if err := r.Apply(ctx, traffic.State{Weight: w}); err != nil {
				t.Fatalf("%s: Apply(%d): %v", r.Name(), w, err)
			}
			o, err := r.Observe(ctx)
			if err != nil || o.Weight != w || !o.Verified || len(o.Routes) != 0 {
				t.Fatalf("%s: Observe() = %+v, %v; want weight %d, verified", r.Name(), o, err, w)
			}
		}
	}

	// What the API server stored.
	var canary networkingv1.Ingress
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-web-canary"}, &canary); err != nil {
		t.Fatal(err)
	}
	if canary.Annotations[nginx.AnnotationWeight] != "0" || canary.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] != "8m" ||
		len(canary.OwnerReferences) != 1 || canary.OwnerReferences[0].UID != ro.UID {
		t.Fatalf("canary ingress %+v", canary.ObjectMeta)
	}
	ts := get(t, ns, smi.TrafficSplitGVK, "web")
	if refs := ts.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != ro.UID {
		t.Fatalf("TrafficSplit owners %v", refs)
	}
	dr := get(t, ns, istio.DestinationRuleGVK, "web")
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	if len(subsets) != 2 || fmt.Sprint(subsets[1]) != "map[labels:map[app:web controller-revision-hash:bbb] name:canary]" {
		t.Fatalf("subsets %v", subsets)
	}
}

func get(t *testing.T, ns string, gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestIstioRoutesAndStatusAgainstTheAPIServer(t *testing.T) {
	const ns = "istio-routes"
	ctx := context.Background()
	namespace(t, ns)
	create(t, object(t, ns, istio.VirtualServiceGVK, `
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: primary
    route: [{destination: {host: web-stable.istio-routes.svc.cluster.local}}]
`))
	r := istio.New(k8s, k8s, traffic.Services{Namespace: ns, Stable: "web-stable", Canary: "web-canary"}, "web", []string{"primary"}, nil)
	state := traffic.State{
		Weight:       10,
		HeaderRoutes: []traffic.HeaderRoute{{Name: "beta", Match: []traffic.HeaderMatch{{Name: "X-Beta", Exact: "yes"}}}},
		MirrorRoutes: []traffic.MirrorRoute{{Name: "shadow", Percent: 50}},
	}
	if err := r.Apply(ctx, state); err != nil {
		t.Fatal(err)
	}
	vs := get(t, ns, istio.VirtualServiceGVK, "web")
	gen := vs.GetGeneration()
	if err := r.Apply(ctx, state); err != nil {
		t.Fatal(err)
	}
	if again := get(t, ns, istio.VirtualServiceGVK, "web"); again.GetResourceVersion() != vs.GetResourceVersion() {
		t.Fatal("applying the same state again wrote the VirtualService")
	}
	o, err := r.Observe(ctx)
	if err != nil || o.Weight != 10 || !o.Verified || !slices.Equal(o.Routes, []string{"header/beta", "mirror/shadow"}) {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}

	// Istio reports an older generation: not verified until it catches up.
	for _, observed := range []int64{gen - 1, gen} {
		if err := unstructured.SetNestedField(vs.Object, observed, "status", "observedGeneration"); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Status().Update(ctx, vs); err != nil {
			t.Fatal(err)
		}
		o, err := r.Observe(ctx)
		if err != nil || o.Verified != (observed == gen) {
			t.Fatalf("observedGeneration %d of %d: Observe() = %+v, %v", observed, gen, o, err)
		}
	}

	if err := r.Apply(ctx, traffic.State{}); err != nil {
		t.Fatal(err)
	}
	raw, _, _ := unstructured.NestedSlice(get(t, ns, istio.VirtualServiceGVK, "web").Object, "spec", "http")
	if len(raw) != 1 || fmt.Sprint(raw[0].(map[string]any)["route"]) !=
		"[map[destination:map[host:web-stable.istio-routes.svc.cluster.local] weight:100] map[destination:map[host:web-canary.istio-routes.svc.cluster.local] weight:0]]" {
		t.Fatalf("after the release: %v", raw)
	}
	if o, err := r.Observe(ctx); err != nil || o.Verified {
		t.Fatalf("a new generation Istio has not observed yet: Observe() = %+v, %v", o, err)
	}
}

func TestTrafficRoutingValidation(t *testing.T) {
	const ns = "validation"
	namespace(t, ns)
	for name, tc := range map[string]struct {
		tr   *rolloutsv1alpha1.TrafficRouting
		want []string
	}{
		"no router": {&rolloutsv1alpha1.TrafficRouting{}, []string{"trafficRouting needs at least one router: gatewayAPI, istio, nginx or smi"}},
		"one subset for both": {&rolloutsv1alpha1.TrafficRouting{Istio: &rolloutsv1alpha1.IstioRouting{
			VirtualService:  rolloutsv1alpha1.IstioVirtualService{Name: "web"},
			DestinationRule: &rolloutsv1alpha1.IstioDestinationRule{Name: "web", StableSubsetName: "a", CanarySubsetName: "a"},
		}}, []string{"stableSubsetName and canarySubsetName must differ"}},
		"smi without a root service": {&rolloutsv1alpha1.TrafficRouting{SMI: &rolloutsv1alpha1.SMIRouting{}}, []string{"rootService"}},
	} {
		err := k8s.Create(context.Background(), rollout(ns, tc.tr))
		if err == nil {
			t.Errorf("%s: created", name)
			continue
		}
		testenv.AssertInvalid(t, err, tc.want...)
	}
}
