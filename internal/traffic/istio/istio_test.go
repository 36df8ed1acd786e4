package istio_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/istio"
)

var svcs = traffic.Services{Namespace: "shop", Stable: "web-stable", Canary: "web-canary"}

// object decodes a YAML manifest.
func object(t *testing.T, gvk schema.GroupVersionKind, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(gvk)
	if u.GetNamespace() == "" {
		u.SetNamespace("shop")
	}
	return u
}

const virtualService = `
metadata: {name: web, generation: 1}
spec:
  hosts: [web.example.com]
  http:
  - name: admin
    match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: admin, port: {number: 8080}}, weight: 100}]
  - name: primary
    match: [{uri: {prefix: /api}}, {uri: {prefix: /v2}}]
    timeout: 5s
    route: [{destination: {host: web-stable, port: {number: 80}}}]
  - name: static
    route: [{destination: {host: static}}]
`

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func get(t *testing.T, c client.Client, gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

// http returns the VirtualService's http routes as JSON-shaped maps.
func http(t *testing.T, c client.Client) []map[string]any {
	t.Helper()
	raw, _, _ := unstructured.NestedSlice(get(t, c, istio.VirtualServiceGVK, "web").Object, "spec", "http")
	var out []map[string]any
	for _, x := range raw {
		out = append(out, x.(map[string]any))
	}
	return out
}

func names(routes []map[string]any) []string {
	var out []string
	for _, r := range routes {
		out = append(out, r["name"].(string))
	}
	return out
}

// jsonOf renders x as compact JSON, for comparisons.
func jsonOf(t *testing.T, x any) string {
	t.Helper()
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWeightsManageOnlyTheServicesDestinations(t *testing.T) {
	c := fakeClient(t, object(t, istio.VirtualServiceGVK, virtualService))
	r := istio.New(c, c, svcs, "web", nil, nil)
	ctx := context.Background()
	for _, w := range []int32{20, 0, 100} {
		if err := r.Apply(ctx, traffic.State{Weight: w}); err != nil {
			t.Fatal(err)
		}
		routes := http(t, c)
		if got := names(routes); !slices.Equal(got, []string{"admin", "primary", "static"}) {
			t.Fatalf("routes %v", got)
		}
		want := `[{"destination":{"host":"web-stable","port":{"number":80}},"weight":` + itoa(100-w) +
			`},{"destination":{"host":"web-canary","port":{"number":80}},"weight":` + itoa(w) + `}]`
		if got := jsonOf(t, routes[1]["route"]); got != want {
			t.Fatalf("weight %d: managed route %s, want %s", w, got, want)
		}
		if routes[1]["timeout"] != "5s" {
			t.Fatalf("the owner's timeout was lost: %v", routes[1])
		}
		if got := jsonOf(t, routes[0]["route"]); got != `[{"destination":{"host":"admin","port":{"number":8080}},"weight":100}]` {
			t.Fatalf("the user's route changed: %s", got)
		}
		if got := jsonOf(t, routes[2]); got != `{"name":"static","route":[{"destination":{"host":"static"}}]}` {
			t.Fatalf("the user's route changed: %s", got)
		}
		o, err := r.Observe(ctx)
		if err != nil || o.Weight != w || !o.Verified || len(o.Routes) != 0 {
			t.Fatalf("Observe() = %+v, %v; want weight %d, verified (no status to wait for)", o, err, w)
		}
	}
	rv := get(t, c, istio.VirtualServiceGVK, "web").GetResourceVersion()
	if err := r.Apply(ctx, traffic.State{Weight: 100}); err != nil {
		t.Fatal(err)
	}
	if now := get(t, c, istio.VirtualServiceGVK, "web").GetResourceVersion(); now != rv {
		t.Fatalf("applying the same state again wrote the VirtualService (resourceVersion %s -> %s)", rv, now)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestFullyQualifiedHostsAndNamedRoutes(t *testing.T) {
	vs := object(t, istio.VirtualServiceGVK, `
metadata: {name: web}
spec:
  http:
  - name: a
    route: [{destination: {host: web-stable.shop.svc.cluster.local}, weight: 100}]
  - name: b
    route: [{destination: {host: web-stable}, weight: 100}]
`)
	c := fakeClient(t, vs)
	r := istio.New(c, c, svcs, "web", []string{"a"}, nil)
	if err := r.Apply(context.Background(), traffic.State{Weight: 40}); err != nil {
		t.Fatal(err)
	}
	routes := http(t, c)
	if got := jsonOf(t, routes[0]["route"]); got != `[{"destination":{"host":"web-stable.shop.svc.cluster.local"},"weight":60},{"destination":{"host":"web-canary.shop.svc.cluster.local"},"weight":40}]` {
		t.Fatalf("route a: %s", got)
	}
	if got := jsonOf(t, routes[1]["route"]); got != `[{"destination":{"host":"web-stable"},"weight":100}]` {
		t.Fatalf("route b is not named in routes and must stay: %s", got)
	}
	if o, err := r.Observe(context.Background()); err != nil || o.Weight != 40 || !o.Verified {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
}

func TestHeaderAndMirrorRoutes(t *testing.T) {
	c := fakeClient(t, object(t, istio.VirtualServiceGVK, virtualService))
	r := istio.New(c, c, svcs, "web", nil, nil)
	ctx := context.Background()
	state := traffic.State{
		Weight: 10,
		HeaderRoutes: []traffic.HeaderRoute{{Name: "beta", Match: []traffic.HeaderMatch{
			{Name: "X-Beta", Exact: "yes"},
			{Name: "Cookie", Regex: `(^|;\s*)group=(b)(;|$)`},
		}}},
		MirrorRoutes: []traffic.MirrorRoute{{Name: "shadow", Percent: 30}},
	}
	for range 2 { // applying twice changes nothing more
		if err := r.Apply(ctx, state); err != nil {
			t.Fatal(err)
		}
	}
	rv := get(t, c, istio.VirtualServiceGVK, "web").GetResourceVersion()
	if err := r.Apply(ctx, state); err != nil {
		t.Fatal(err)
	}
	if now := get(t, c, istio.VirtualServiceGVK, "web").GetResourceVersion(); now != rv {
		t.Fatalf("applying the same routes again wrote the VirtualService")
	}
	routes := http(t, c)
	if got := names(routes); !slices.Equal(got, []string{"admin", "drover-header-beta-1", "drover-mirror-shadow-1", "primary", "static"}) {
		t.Fatalf("routes %v: header and mirror routes go right before the route they derive from", got)
	}
	header, mirror := routes[1], routes[2]
	wantMatch := `[{"headers":{"cookie":{"regex":".*(?:(^|;\\s*)group=(b)(;|$)).*"},"x-beta":{"exact":"yes"}},"uri":{"prefix":"/api"}},` +
		`{"headers":{"cookie":{"regex":".*(?:(^|;\\s*)group=(b)(;|$)).*"},"x-beta":{"exact":"yes"}},"uri":{"prefix":"/v2"}}]`
	if got := jsonOf(t, header["match"]); got != wantMatch {
		t.Fatalf("header route matches %s, want %s", got, wantMatch)
	}
	if got := jsonOf(t, header["route"]); got != `[{"destination":{"host":"web-canary","port":{"number":80}},"weight":100}]` {
		t.Fatalf("header route destinations %s", got)
	}
	if header["timeout"] != "5s" {
		t.Fatalf("the header route must keep the owner's other fields: %v", header)
	}
	if got := jsonOf(t, mirror["match"]); got != `[{"uri":{"prefix":"/api"}},{"uri":{"prefix":"/v2"}}]` {
		t.Fatalf("mirror route matches %s", got)
	}
	if got := jsonOf(t, mirror["mirror"]); got != `{"host":"web-canary","port":{"number":80}}` {
		t.Fatalf("mirror %s", got)
	}
	if got := jsonOf(t, mirror["mirrorPercentage"]); got != `{"value":30}` {
		t.Fatalf("mirrorPercentage %s", got)
	}
	if got, want := jsonOf(t, mirror["route"]), jsonOf(t, routes[3]["route"]); got != want {
		t.Fatalf("mirror route destinations %s, want the owner's %s", got, want)
	}
	o, err := r.Observe(ctx)
	if err != nil || o.Weight != 10 || !o.Verified || !slices.Equal(o.Routes, state.RouteNames()) {
		t.Fatalf("Observe() = %+v, %v; want routes %v", o, err, state.RouteNames())
	}

	// The end of the release: the managed routes go, the owner's stay.
	if err := r.Apply(ctx, traffic.State{}); err != nil {
		t.Fatal(err)
	}
	if got := names(http(t, c)); !slices.Equal(got, []string{"admin", "primary", "static"}) {
		t.Fatalf("routes %v after the release", got)
	}
	if o, err := r.Observe(ctx); err != nil || o.Weight != 0 || len(o.Routes) != 0 {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
}

func TestVerifiedWhenIstioObservedTheGeneration(t *testing.T) {
	for _, tc := range []struct {
		status   string
		verified bool
	}{
		{"", true},
		{"status: {observedGeneration: 2}", false},
		{"status: {observedGeneration: 3}", true},
		{`status: {observedGeneration: "3"}`, true},
	} {
		vs := object(t, istio.VirtualServiceGVK, virtualService+tc.status)
		vs.SetGeneration(3)
		c := fakeClient(t, vs)
		o, err := istio.New(c, c, svcs, "web", nil, nil).Observe(context.Background())
		if err != nil || o.Verified != tc.verified {
			t.Errorf("%q: Observe() = %+v, %v; want verified %v", tc.status, o, err, tc.verified)
		}
	}
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
}

func TestDestinationRuleSubsetsFollowTheServices(t *testing.T) {
	vs := object(t, istio.VirtualServiceGVK, `
metadata: {name: web}
spec:
  http:
  - name: primary
    route: [{destination: {host: web, subset: stable}}]
  - name: other
    route: [{destination: {host: web, subset: legacy}}]
`)
	dr := object(t, istio.DestinationRuleGVK, `
metadata: {name: web}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - name: legacy
    labels: {version: v1}
  - name: stable
    labels: {app: web}
    trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}
`)
	stable := service("web-stable", map[string]string{"app": "web", "controller-revision-hash": "aaa"})
	canary := service("web-canary", map[string]string{"app": "web", "controller-revision-hash": "bbb"})
	c := fakeClient(t, vs, dr, stable, canary)
	r := istio.New(c, c, svcs, "web", nil, &istio.DestinationRule{Name: "web", StableSubset: "stable", CanarySubset: "canary"})
	ctx := context.Background()
	if err := r.Apply(ctx, traffic.State{Weight: 30, HeaderRoutes: []traffic.HeaderRoute{{Name: "beta", Match: []traffic.HeaderMatch{{Name: "x-beta", Exact: "1"}}}}}); err != nil {
		t.Fatal(err)
	}
	subsets, _, _ := unstructured.NestedSlice(get(t, c, istio.DestinationRuleGVK, "web").Object, "spec", "subsets")
	want := `[{"labels":{"version":"v1"},"name":"legacy"},` +
		`{"labels":{"app":"web","controller-revision-hash":"aaa"},"name":"stable","trafficPolicy":{"connectionPool":{"tcp":{"maxConnections":10}}}},` +
		`{"labels":{"app":"web","controller-revision-hash":"bbb"},"name":"canary"}]`
	if got := jsonOf(t, subsets); got != want {
		t.Fatalf("subsets %s, want %s", got, want)
	}
	routes := http(t, c)
	if got := names(routes); !slices.Equal(got, []string{"drover-header-beta-0", "primary", "other"}) {
		t.Fatalf("routes %v", got)
	}
	if got := jsonOf(t, routes[1]["route"]); got != `[{"destination":{"host":"web","subset":"stable"},"weight":70},{"destination":{"host":"web","subset":"canary"},"weight":30}]` {
		t.Fatalf("managed route %s", got)
	}
	if got := jsonOf(t, routes[0]["route"]); got != `[{"destination":{"host":"web","subset":"canary"},"weight":100}]` {
		t.Fatalf("header route %s", got)
	}
	if got := jsonOf(t, routes[2]["route"]); got != `[{"destination":{"host":"web","subset":"legacy"}}]` {
		t.Fatalf("the user's route changed: %s", got)
	}
	if o, err := r.Observe(ctx); err != nil || o.Weight != 30 || !o.Verified || !slices.Equal(o.Routes, []string{"header/beta"}) {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}

	// A new canary revision: the subset is stale until the next Apply.
	canary.Spec.Selector["controller-revision-hash"] = "ccc"
	if err := c.Update(ctx, canary); err != nil {
		t.Fatal(err)
	}
	if o, err := r.Observe(ctx); err != nil || o.Verified {
		t.Fatalf("stale subset: Observe() = %+v, %v; want unverified", o, err)
	}
	if err := r.Apply(ctx, traffic.State{Weight: 30}); err != nil {
		t.Fatal(err)
	}
	if o, err := r.Observe(ctx); err != nil || !o.Verified || len(o.Routes) != 0 {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
}

func TestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		manifest string
		routes   []string
		want     string
	}{
		"no route sends to the services": {`
metadata: {name: web}
spec: {http: [{name: a, route: [{destination: {host: other}}]}]}`, nil, "no http route sends traffic"},
		"a named route is missing":      {virtualService, []string{"primary", "nope"}, "no http route named nope"},
		"a named route sends elsewhere": {virtualService, []string{"admin"}, "http route admin sends to neither"},
		"a third destination": {`
metadata: {name: web}
spec: {http: [{name: a, route: [{destination: {host: web-stable}, weight: 50}, {destination: {host: other}, weight: 50}]}]}`, nil, "destinations besides"},
	} {
		c := fakeClient(t, object(t, istio.VirtualServiceGVK, tc.manifest))
		err := istio.New(c, c, svcs, "web", tc.routes, nil).Apply(context.Background(), traffic.State{Weight: 10})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Apply() = %v, want an error with %q", name, err, tc.want)
		}
	}
	c := fakeClient(t)
	if err := istio.New(c, c, svcs, "web", nil, nil).Apply(context.Background(), traffic.State{}); err == nil || !strings.Contains(err.Error(), "reading VirtualService web") {
		t.Errorf("missing VirtualService: Apply() = %v", err)
	}
}
