// Package chart tests the Helm chart in charts/drover. It renders the chart
// with bin/helm for several value sets and checks what comes out, lints it,
// checks that values.schema.json refuses bad values and that
// docs/install.md documents every value; then, against a real API server
// (envtest), it has every rendered object (and the manifests in
// docs/install.md) accepted with a server-side dry run, and finally
// `helm install`s the chart and runs drover-manager with the installed
// Deployment's arguments as the installed ServiceAccount.
//
// The tests skip only when bin/helm is missing (`make tools` builds it).
package chart

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/drover-dev/drover/internal/testenv"
)

const (
	releaseName      = "drover"
	releaseNamespace = "drover-system"
	managerName      = "drover-manager" // fullname ("drover") + "-manager"
	fieldOwner       = "drover-chart-test"
	helmTimeout      = 2 * time.Minute
)

var serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// clusterScopedKinds are the kinds the chart may render without a namespace.
// The dry-run test cross-checks every object's scope against the API server's
// RESTMapper, so a kind missing here cannot slip through.
var clusterScopedKinds = map[string]bool{
	"CustomResourceDefinition": true,
	"ClusterRole":              true,
	"ClusterRoleBinding":       true,
	// The SidecarSet injection webhook's configuration.
	"MutatingWebhookConfiguration": true,
}

// valueSets are the configurations every test renders: the defaults, an HA
// install with the optional objects on, and one that sets most values.
var valueSets = []struct {
	name string
	args []string
}{
	{name: "defaults"},
	{name: "ha", args: []string{
		"--set", "replicas=2",
		"--set", "metrics.serviceMonitor.enabled=true",
		"--set", "podDisruptionBudget.enabled=true",
	}},
	{name: "tuned", args: []string{
		"--set", "leaderElection.enabled=false",
		"--set", "concurrency=8",
		"--set", "podWriteConcurrency=16",
		"--set", "kubeAPI.qps=50.5",
		"--set", "kubeAPI.burst=100",
		"--set", "logging.level=debug",
		"--set", "logging.format=console",
		"--set", "image.digest=sha256:" + strings.Repeat("ab", 32),
		"--set", "nodeSelector.kubernetes\\.io/os=linux",
		"--set", "tolerations[0].key=dedicated,tolerations[0].operator=Equal,tolerations[0].value=control,tolerations[0].effect=NoSchedule",
		"--set", "podAnnotations.example\\.com/team=platform",
		"--set", "commonLabels.example\\.com/owner=platform",
		"--set", "extraArgs[0]=--zap-stacktrace-level=panic",
		"--set", "resources.limits.cpu=1",
		"--set", "priorityClassName=system-cluster-critical",
		"--set", "metrics.serviceMonitor.enabled=true",
		"--set", "metrics.serviceMonitor.labels.release=prometheus",
	}},
}

// ---------------------------------------------------------------------------
// helpers

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "charts", "drover")
}

// helmBin returns bin/helm, skipping the test when it has not been built.
func helmBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("bin/helm not found (%v): build it with 'make tools' to test the Helm chart", err)
	}
	return p
}

// helm runs bin/helm and returns its stdout; stderr goes into the error.
func helm(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	// Keep helm away from the user's config, cache and kubeconfig.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// render runs `helm template` with the CRDs included and decodes the result.
func render(t testing.TB, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", releaseName, chartDir(t),
		"--namespace", releaseNamespace, "--include-crds"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v\n%s", err, out)
	}
	if len(objs) == 0 {
		t.Fatalf("the chart rendered no objects")
	}
	return objs
}

// splitYAML splits multi-document YAML with apimachinery's YAML reader and
// returns each non-empty document as JSON.
func splitYAML(data []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%w in document:\n%s", err, doc)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" || s == "{}" {
			continue // empty document (only comments or separators)
		}
		docs = append(docs, js)
	}
}

// decodeObjects decodes multi-document YAML into Unstructured objects.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	docs, err := splitYAML(data)
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, len(docs))
	for _, js := range docs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%w in document:\n%s", err, js)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// isManifest reports whether a YAML block holds Kubernetes objects (rather
// than Helm values).
func isManifest(block string) bool {
	docs, err := splitYAML([]byte(block))
	if err != nil || len(docs) == 0 {
		return false
	}
	var m map[string]any
	return json.Unmarshal(docs[0], &m) == nil && m["kind"] != nil && m["apiVersion"] != nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of kind and name, failing otherwise.
func one(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range ofKind(objs, kind) {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, got %d (rendered: %s)", kind, name, len(found), summary(objs))
	}
	return found[0]
}

// typed converts u into a typed object.
func typed[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s does not match its Go type: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func summary(objs []*unstructured.Unstructured) string {
	s := make([]string, 0, len(objs))
	for _, o := range objs {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

func managerContainer(t testing.TB, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container named manager", d.Name)
	return corev1.Container{}
}

func containerPort(t testing.TB, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, name)
	return 0
}

// probePort resolves a probe's HTTP port (named or numeric) to a number.
func probePort(t testing.TB, c corev1.Container, p *corev1.Probe) int32 {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("container %s: want an HTTP probe, got %+v", c.Name, p)
	}
	if p.HTTPGet.Port.Type == intstr.String {
		return containerPort(t, c, p.HTTPGet.Port.StrVal)
	}
	return p.HTTPGet.Port.IntVal
}

// ---------------------------------------------------------------------------
// rendering

func TestRenderDefaults(t *testing.T) {
	objs := render(t)

	// The expected set of objects, and nothing optional.
	want := map[string]int{
		"ServiceAccount": 1, "ClusterRole": 4, "ClusterRoleBinding": 2, "Role": 2,
		"RoleBinding": 2, "Deployment": 1, "Service": 2,
		"Secret": 1, "MutatingWebhookConfiguration": 1, // the SidecarSet injection webhook
		"CustomResourceDefinition": countCRDFiles(t),
	}
	got := map[string]int{}
	for _, o := range objs {
		got[o.GetKind()]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rendered kinds: got %v, want %v", got, want)
	}

	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas: got %v, want 1", d.Spec.Replicas)
	}
	c := managerContainer(t, d)
	if c.Image != "ghcr.io/drover-dev/drover-manager:0.1.0" {
		t.Errorf("image: got %q, want the chart's appVersion tag", c.Image)
	}
	for _, a := range []string{
		"--leader-elect", // leaderElection.enabled defaults to true
		"--leader-election-namespace=" + releaseNamespace,
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
		"--concurrency=4",
		"--kube-api-qps=-1",
		"--zap-log-level=info",
		"--zap-encoder=json",
	} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("manager args %q lack %q", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--kube-api-burst") }) {
		t.Errorf("manager args %q: --kube-api-burst must be left to the manager by default", c.Args)
	}

	// Resources: requests and a memory limit, the GC told about the limit.
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.String() != "100m" {
		t.Errorf("cpu request: got %s, want 100m", q.String())
	}
	if q := c.Resources.Requests[corev1.ResourceMemory]; q.String() != "64Mi" {
		t.Errorf("memory request: got %s, want 64Mi", q.String())
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("no memory limit: %v", c.Resources.Limits)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "DROVER_CONTAINER_MEMORY_LIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
			e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" && e.ValueFrom.ResourceFieldRef.Divisor.IsZero()
	}) {
		t.Errorf("DROVER_CONTAINER_MEMORY_LIMIT is not set from limits.memory in bytes: %+v", c.Env)
	}

	// The metrics Service selects the manager's pods and targets the port the
	// manager listens on.
	svc := typed[corev1.Service](t, one(t, objs, "Service", managerName+"-metrics"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].Port != 8080 {
		t.Fatalf("metrics Service ports: got %+v, want one port http-metrics/8080", svc.Spec.Ports)
	}
	if tp := svc.Spec.Ports[0].TargetPort; tp.Type == intstr.String {
		if containerPort(t, c, tp.StrVal) != 8080 {
			t.Errorf("metrics Service targets port %q which is not 8080", tp.StrVal)
		}
	} else if tp.IntVal != 8080 {
		t.Errorf("metrics Service targetPort: got %d, want 8080", tp.IntVal)
	}
	if !labelsSelect(svc.Spec.Selector, d.Spec.Template.Labels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("metrics Service selector %v does not select the manager pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}

	// Bindings point at the rendered roles and ServiceAccount.
	sa := one(t, objs, "ServiceAccount", managerName)
	if d.Spec.Template.Spec.ServiceAccountName != sa.GetName() {
		t.Errorf("Deployment uses ServiceAccount %q, chart renders %q", d.Spec.Template.Spec.ServiceAccountName, sa.GetName())
	}
	crb := typed[rbacv1.ClusterRoleBinding](t, one(t, objs, "ClusterRoleBinding", managerName))
	one(t, objs, "ClusterRole", crb.RoleRef.Name)
	checkSubjects(t, crb.Subjects, sa.GetName())
	rb := typed[rbacv1.RoleBinding](t, one(t, objs, "RoleBinding", managerName+"-leader-election"))
	one(t, objs, "Role", rb.RoleRef.Name)
	checkSubjects(t, rb.Subjects, sa.GetName())

	// Standard labels on every object the templates render.
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			continue // copied verbatim from config/crd/bases
		}
		l := o.GetLabels()
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if l[k] == "" {
				t.Errorf("%s/%s lacks label %s", o.GetKind(), o.GetName(), k)
			}
		}
	}
}

func checkSubjects(t testing.TB, subjects []rbacv1.Subject, sa string) {
	t.Helper()
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: releaseNamespace}}
	if !reflect.DeepEqual(subjects, want) {
		t.Errorf("binding subjects: got %+v, want %+v", subjects, want)
	}
}

func labelsSelect(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestRenderAllValueSets checks the properties every configuration must
// keep: probes, security context, least-privilege RBAC and namespaces.
func TestRenderAllValueSets(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, vs.args...)
			checkNamespaces(t, objs)
			checkRBAC(t, objs)

			d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
			c := managerContainer(t, d)
			healthPort := int32(8081)
			if !slices.Contains(c.Args, fmt.Sprintf("--health-probe-bind-address=:%d", healthPort)) {
				t.Errorf("args %q: the health probe address is not :%d", c.Args, healthPort)
			}
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("liveness probe: got %+v, want GET /healthz", c.LivenessProbe)
			} else if p := probePort(t, c, c.LivenessProbe); p != healthPort {
				t.Errorf("liveness probe port: got %d, want %d", p, healthPort)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness probe: got %+v, want GET /readyz", c.ReadinessProbe)
			} else if p := probePort(t, c, c.ReadinessProbe); p != healthPort {
				t.Errorf("readiness probe port: got %d, want %d", p, healthPort)
			}
			checkSecurityContext(t, d.Spec.Template.Spec.SecurityContext, c.SecurityContext)

			// Selector labels must select the pod template (the API server
			// checks this too, in the dry-run test).
			sel, err := metav1.LabelSelectorAsMap(d.Spec.Selector)
			if err != nil || !labelsSelect(sel, d.Spec.Template.Labels) {
				t.Errorf("Deployment selector %v does not select its template labels %v (%v)", sel, d.Spec.Template.Labels, err)
			}
		})
	}
}

func checkSecurityContext(t testing.TB, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	t.Helper()
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
		t.Errorf("pod securityContext: want runAsNonRoot, got %+v", pod)
	}
	if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: want seccomp RuntimeDefault, got %+v", pod)
	}
	if c == nil {
		t.Fatalf("manager container has no securityContext")
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Errorf("container securityContext: want readOnlyRootFilesystem")
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Errorf("container securityContext: want allowPrivilegeEscalation false")
	}
	if c.RunAsNonRoot == nil || !*c.RunAsNonRoot {
		t.Errorf("container securityContext: want runAsNonRoot")
	}
	if c.Capabilities == nil || !reflect.DeepEqual(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) != 0 {
		t.Errorf("container capabilities: got %+v, want drop [ALL] and nothing added", c.Capabilities)
	}
	if c.SeccompProfile == nil || c.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext: want seccomp RuntimeDefault, got %+v", c.SeccompProfile)
	}
}

// checkNamespaces: every namespaced object is in the release namespace, and
// only known cluster-scoped kinds have none.
func checkNamespaces(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		switch {
		case clusterScopedKinds[o.GetKind()]:
			if o.GetNamespace() != "" {
				t.Errorf("cluster-scoped %s/%s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		case o.GetNamespace() != releaseNamespace:
			t.Errorf("%s/%s: namespace %q, want the release namespace %q", o.GetKind(), o.GetName(), o.GetNamespace(), releaseNamespace)
		}
	}
}

// checkRBAC: no wildcard anywhere in any Role or ClusterRole, and the
// manager's ClusterRole is exactly files/rbac-rules.yaml.
func checkRBAC(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	n := 0
	for _, o := range objs {
		var rules []rbacv1.PolicyRule
		switch o.GetKind() {
		case "ClusterRole":
			cr := typed[rbacv1.ClusterRole](t, o)
			if cr.AggregationRule != nil {
				t.Errorf("ClusterRole %s has an aggregationRule; it could pick up arbitrary rules", cr.Name)
			}
			rules = cr.Rules
		case "Role":
			rules = typed[rbacv1.Role](t, o).Rules
		default:
			continue
		}
		n++
		if len(rules) == 0 {
			t.Errorf("%s %s has no rules", o.GetKind(), o.GetName())
		}
		for i, r := range rules {
			for field, vals := range map[string][]string{
				"verbs": r.Verbs, "resources": r.Resources, "apiGroups": r.APIGroups,
				"resourceNames": r.ResourceNames, "nonResourceURLs": r.NonResourceURLs,
			} {
				for _, v := range vals {
					if strings.Contains(v, "*") {
						t.Errorf("%s %s rule %d: wildcard %q in %s", o.GetKind(), o.GetName(), i, v, field)
					}
				}
			}
			if len(r.Verbs) == 0 {
				t.Errorf("%s %s rule %d has no verbs", o.GetKind(), o.GetName(), i)
			}
			for _, v := range r.Verbs {
				if v == "escalate" || v == "bind" || v == "impersonate" {
					t.Errorf("%s %s rule %d grants %q", o.GetKind(), o.GetName(), i, v)
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("no Role or ClusterRole rendered")
	}

	cr := typed[rbacv1.ClusterRole](t, one(t, objs, "ClusterRole", managerName))
	var fromFile struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir(t), "files", "rbac-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &fromFile); err != nil {
		t.Fatalf("files/rbac-rules.yaml: %v", err)
	}
	if !reflect.DeepEqual(cr.Rules, fromFile.Rules) {
		t.Errorf("ClusterRole %s rules differ from files/rbac-rules.yaml:\n got %+v\nwant %+v", cr.Name, cr.Rules, fromFile.Rules)
	}

	le := typed[rbacv1.Role](t, one(t, objs, "Role", managerName+"-leader-election"))
	if !grants(le.Rules, "coordination.k8s.io", "leases", "get", "list", "watch", "create", "update", "patch", "delete") {
		t.Errorf("leader-election Role does not grant leases: %+v", le.Rules)
	}
	if !grants(le.Rules, "", "events", "create", "patch") {
		t.Errorf("leader-election Role does not grant events create/patch: %+v", le.Rules)
	}
}

func grants(rules []rbacv1.PolicyRule, group, resource string, verbs ...string) bool {
	for _, v := range verbs {
		ok := false
		for _, r := range rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func TestRenderHA(t *testing.T) {
	// replicas > 1 forces leader election even when it is switched off.
	objs := render(t, "--set", "replicas=2", "--set", "leaderElection.enabled=false",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "podDisruptionBudget.enabled=true")
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas: got %v, want 2", d.Spec.Replicas)
	}
	c := managerContainer(t, d)
	if !slices.Contains(c.Args, "--leader-elect") || !slices.Contains(c.Args, "--leader-election-namespace="+releaseNamespace) {
		t.Errorf("replicas=2: args %q lack --leader-elect / --leader-election-namespace", c.Args)
	}

	sm := one(t, objs, "ServiceMonitor", managerName)
	if sm.GroupVersionKind() != serviceMonitorGVK {
		t.Errorf("ServiceMonitor apiVersion: got %s", sm.GetAPIVersion())
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "http-metrics" {
		t.Errorf("ServiceMonitor endpoints: got %v, want one on port http-metrics", endpoints)
	}
	smSel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	svc := one(t, objs, "Service", managerName+"-metrics")
	if len(smSel) == 0 || !labelsSelect(smSel, svc.GetLabels()) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", smSel, svc.GetLabels())
	}

	pdb := one(t, objs, "PodDisruptionBudget", managerName)
	pdbSel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	if len(pdbSel) == 0 || !labelsSelect(pdbSel, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the manager pods", pdbSel)
	}
}

func TestRenderSingleReplicaWithoutLeaderElection(t *testing.T) {
	objs := render(t, "--set", "leaderElection.enabled=false")
	c := managerContainer(t, typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName)))
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--leader-elect") {
			t.Errorf("replicas=1, leaderElection.enabled=false: unexpected %q in %q", a, c.Args)
		}
	}
}

func TestRenderValues(t *testing.T) {
	var tuned []string
	for _, vs := range valueSets {
		if vs.name == "tuned" {
			tuned = vs.args
		}
	}
	objs := render(t, tuned...)
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
	c := managerContainer(t, d)
	for _, a := range []string{
		"--concurrency=8", "--pod-write-concurrency=16", "--kube-api-qps=50.5", "--kube-api-burst=100",
		"--zap-log-level=debug", "--zap-encoder=console", "--zap-stacktrace-level=panic",
	} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %q lack %q", c.Args, a)
		}
	}
	if slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("leaderElection.enabled=false with one replica: args %q still have --leader-elect", c.Args)
	}
	if want := "ghcr.io/drover-dev/drover-manager@sha256:" + strings.Repeat("ab", 32); c.Image != want {
		t.Errorf("image: got %q, want %q", c.Image, want)
	}
	ps := d.Spec.Template.Spec
	if ps.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector: got %v", ps.NodeSelector)
	}
	if len(ps.Tolerations) != 1 || ps.Tolerations[0].Key != "dedicated" || ps.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations: got %+v", ps.Tolerations)
	}
	if ps.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName: got %q", ps.PriorityClassName)
	}
	if d.Spec.Template.Annotations["example.com/team"] != "platform" {
		t.Errorf("podAnnotations not applied: %v", d.Spec.Template.Annotations)
	}
	if q := c.Resources.Limits[corev1.ResourceCPU]; q.String() != "1" {
		t.Errorf("cpu limit: got %s, want 1", q.String())
	}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && o.GetLabels()["example.com/owner"] != "platform" {
			t.Errorf("%s/%s lacks commonLabels", o.GetKind(), o.GetName())
		}
	}
	sm := one(t, objs, "ServiceMonitor", managerName)
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels: got %v", sm.GetLabels())
	}
}

// TestValuesSchema: values.schema.json refuses values that would render a
// broken manager.
func TestValuesSchema(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bad webhook failurePolicy", []string{"--set", "webhook.failurePolicy=Sometimes"}},
		{"webhook port out of range", []string{"--set", "webhook.port=0"}},
		{"typo in the webhook values", []string{"--set", "webhook.certmanager.enabled=true"}},
		{"bad issuer kind", []string{"--set", "webhook.certManager.issuerRef.kind=Vault"}},
		{"unknown top-level key", []string{"--set", "replica=2"}},
		{"negative replicas", []string{"--set", "replicas=-1"}},
		{"zero concurrency", []string{"--set", "concurrency=0"}},
		{"bad log level", []string{"--set", "logging.level=loud"}},
		{"bad log format", []string{"--set", "logging.format=xml"}},
		{"bad pull policy", []string{"--set", "image.pullPolicy=Sometimes"}},
		{"bad digest", []string{"--set", "image.digest=latest"}},
		{"qps not a number", []string{"--set-string", "kubeAPI.qps=fast"}},
		{"negative burst", []string{"--set", "kubeAPI.burst=-5"}},
		{"port out of range", []string{"--set", "metrics.port=70000"}},
		{"bad quantity", []string{"--set", "resources.limits.memory=lots"}},
		{"bad scrape interval", []string{"--set", "metrics.serviceMonitor.interval=often"}},
		{"extraArgs without dashes", []string{"--set", "extraArgs[0]=leader-elect"}},
		{"typo in a nested key", []string{"--set", "metrics.serviceMonitor.enable=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm(t, append([]string{"template", releaseName, chartDir(t), "--namespace", releaseNamespace}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template %q: want a schema error, got none", tc.args)
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("want a values schema error, got: %v", err)
			}
		})
	}
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(t), "--namespace", releaseNamespace}, vs.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestCRDsInSync: the chart ships exactly config/crd/bases (make manifests
// runs hack/sync-chart.sh; this catches forgetting it).
func TestCRDsInSync(t *testing.T) {
	root := repoRoot(t)
	src := readDir(t, filepath.Join(root, "config", "crd", "bases"))
	dst := readDir(t, filepath.Join(chartDir(t), "crds"))
	if len(src) == 0 {
		t.Fatalf("no CRDs in config/crd/bases")
	}
	for name, data := range src {
		if got, ok := dst[name]; !ok {
			t.Errorf("charts/drover/crds/%s missing: run 'make manifests'", name)
		} else if !bytes.Equal(got, data) {
			t.Errorf("charts/drover/crds/%s differs from config/crd/bases: run 'make manifests'", name)
		}
	}
	for name := range dst {
		if _, ok := src[name]; !ok {
			t.Errorf("charts/drover/crds/%s has no source in config/crd/bases: run 'make manifests'", name)
		}
	}
}

func readDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = data
	}
	return out
}

func countCRDFiles(t testing.TB) int {
	t.Helper()
	return len(readDir(t, filepath.Join(chartDir(t), "crds")))
}

// ---------------------------------------------------------------------------
// docs/install.md

func docsPath(t testing.TB) string {
	return filepath.Join(repoRoot(t), "docs", "install.md")
}

// docsYAMLBlocks returns the bodies of the ```yaml blocks in docs/install.md.
func docsYAMLBlocks(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(docsPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```yaml":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	if in {
		t.Fatalf("docs/install.md: unterminated yaml block")
	}
	return blocks
}

// TestDocs keeps docs/install.md honest: its values table documents every
// value (and no value that does not exist), and every values example in it
// renders.
func TestDocs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docsPath(t))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `") {
			key := strings.TrimPrefix(line, "| `")
			key = key[:strings.Index(key, "`")]
			documented[key] = true
		}
	}
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, sub := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, sub)
			}
			return
		}
		leaves = append(leaves, prefix)
	}
	walk("", values)
	for _, leaf := range leaves {
		covered := false
		for p := leaf; p != ""; {
			if documented[p] {
				covered = true
				break
			}
			i := strings.LastIndex(p, ".")
			if i < 0 {
				break
			}
			p = p[:i]
		}
		if !covered {
			t.Errorf("value %s is not in docs/install.md's values table", leaf)
		}
	}
	for key := range documented {
		var v any = values
		for _, part := range strings.Split(key, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			if v, ok = m[part]; !ok {
				break
			}
		}
		if v == nil && !slices.Contains(leaves, key) {
			t.Errorf("docs/install.md documents %s, which values.yaml does not have", key)
		}
	}

	valuesFiles := 0
	for i, block := range docsYAMLBlocks(t) {
		if isManifest(block) {
			continue // Kubernetes manifests, dry-run by TestServerSideDryRun
		}
		if _, err := splitYAML([]byte(block)); err != nil {
			t.Fatalf("docs/install.md yaml block %d: %v", i, err)
		}
		valuesFiles++
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := helm(t, "template", releaseName, chartDir(t), "--namespace", releaseNamespace, "-f", f); err != nil {
			t.Errorf("docs/install.md values example %d does not render:\n%s\n%v", i, block, err)
		}
	}
	if valuesFiles == 0 {
		t.Errorf("docs/install.md has no values examples")
	}
}

// ---------------------------------------------------------------------------
// against a real API server

// warnings collects API server warnings (deprecations, Pod Security).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// TestServerSideDryRun has the API server accept every rendered object of
// every value set with a server-side dry-run apply, in a namespace that
// enforces the "restricted" Pod Security Standard; then installs, upgrades
// and uninstalls the chart for real with helm.
func TestServerSideDryRun(t *testing.T) {
	helmBin(t) // skip before starting an API server if helm is missing
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	warn := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = warn
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	restricted := map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace, Labels: restricted}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("creating the release namespace: %v", err)
	}
	warn.take()

	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs.args...)
			applied, skipped := 0, 0
			for _, o := range objs {
				if o.GroupVersionKind() == serviceMonitorGVK {
					// prometheus-operator's CRD is not installed here; the
					// render tests check the object itself.
					skipped++
					continue
				}
				checkScope(t, c.RESTMapper(), o)
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
					client.FieldOwner(fieldOwner), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("server-side dry run of %s %s/%s refused: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				} else {
					applied++
				}
				for _, w := range warn.take() {
					t.Errorf("API server warning for %s %s: %s", o.GetKind(), o.GetName(), w)
				}
			}
			enabled := slices.Contains(vs.args, "metrics.serviceMonitor.enabled=true")
			if enabled && skipped != 1 {
				t.Errorf("serviceMonitor enabled: want one ServiceMonitor rendered, got %d", skipped)
			}
			if !enabled && skipped != 0 {
				t.Errorf("serviceMonitor disabled: want no ServiceMonitor, got %d", skipped)
			}
			if applied != len(objs)-skipped {
				t.Errorf("dry-run accepted %d of %d objects", applied, len(objs)-skipped)
			}

			// Pod Security "enforce" applies to pods, not Deployments: dry-run
			// the Deployment's pod as a Pod in the restricted namespace.
			d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
			podSecurityDryRun(ctx, t, c, d)
			for _, w := range warn.take() {
				t.Errorf("API server warning for the manager pod: %s", w)
			}
		})
	}

	t.Run("docs/install.md manifests", func(t *testing.T) {
		n := 0
		for i, block := range docsYAMLBlocks(t) {
			if !isManifest(block) {
				continue // a values file, checked by TestDocs
			}
			objs, err := decodeObjects([]byte(block))
			if err != nil {
				t.Fatalf("docs/install.md yaml block %d: %v", i, err)
			}
			for _, o := range objs {
				n++
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o),
					client.FieldOwner(fieldOwner), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("docs/install.md: %s %s refused: %v", o.GetKind(), o.GetName(), err)
				}
				for _, w := range warn.take() {
					t.Errorf("API server warning for docs/install.md's %s %s: %s", o.GetKind(), o.GetName(), w)
				}
			}
		}
		if n == 0 {
			t.Errorf("docs/install.md has no Kubernetes manifests (the FlowSchema example?)")
		}
	})

	t.Run("helm install, upgrade, uninstall", func(t *testing.T) {
		helmInstallCycle(ctx, t, env.Config)
	})
}

// checkScope compares the object's namespace with the API server's idea of
// its kind's scope.
func checkScope(t testing.TB, mapper meta.RESTMapper, o *unstructured.Unstructured) {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Errorf("%s %s: the API server does not know the kind: %v", gvk, o.GetName(), err)
		return
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() != releaseNamespace {
			t.Errorf("namespaced %s %s is in %q, want the release namespace %q", o.GetKind(), o.GetName(), o.GetNamespace(), releaseNamespace)
		}
	} else if o.GetNamespace() != "" {
		t.Errorf("cluster-scoped %s %s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
	}
}

// podSecurityDryRun creates the Deployment's pod with a dry run. The
// ServiceAccount admission plugin needs the pod's ServiceAccount to exist,
// so it is created for real first.
func podSecurityDryRun(ctx context.Context, t testing.TB, c client.Client, d *appsv1.Deployment) {
	t.Helper()
	saName := d.Spec.Template.Spec.ServiceAccountName
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName, Namespace: d.Namespace}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating ServiceAccount %s: %v", saName, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        d.Name + "-dry-run",
			Namespace:   d.Namespace,
			Labels:      d.Spec.Template.Labels,
			Annotations: d.Spec.Template.Annotations,
		},
		Spec: *d.Spec.Template.Spec.DeepCopy(),
	}
	if pod.Spec.PriorityClassName != "" {
		// The Priority admission plugin resolves the class; only the
		// built-in ones exist here.
		if !strings.HasPrefix(pod.Spec.PriorityClassName, "system-") {
			pod.Spec.PriorityClassName = ""
		}
	}
	if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("the manager pod is refused in a namespace enforcing the restricted Pod Security Standard: %v", err)
	}
}

// helmInstallCycle installs the chart with helm itself, runs the manager
// with the installed Deployment's arguments as the installed ServiceAccount,
// upgrades to an HA configuration and uninstalls, in its own namespace.
func helmInstallCycle(ctx context.Context, t *testing.T, cfg *rest.Config) {
	const (
		ns      = "drover-helm"
		release = "drover-it"
		manager = release + "-manager" // the release name contains "drover"
	)
	kubeconfig := writeKubeconfig(t, cfg, "")
	run := func(args ...string) string {
		t.Helper()
		out, err := helm(t, append(args, "--kubeconfig", kubeconfig)...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	metricsPort, healthPort := freePort(t), freePort(t)
	out := run("install", release, chartDir(t), "--namespace", ns, "--create-namespace",
		"--set", fmt.Sprintf("metrics.port=%d", metricsPort), "--set", fmt.Sprintf("health.port=%d", healthPort),
		"--set", fmt.Sprintf("webhook.port=%d", freePort(t)))
	if !strings.Contains(out, "STATUS: deployed") {
		t.Errorf("helm install:\n%s", out)
	}
	if !strings.Contains(out, "rollout status deployment/"+manager) {
		t.Errorf("helm install NOTES do not name the Deployment:\n%s", out)
	}

	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: manager}, d); err != nil {
		t.Fatalf("after helm install: %v", err)
	}
	t.Run("manager runs with the chart's args and RBAC", func(t *testing.T) {
		runManagerAsInstalled(ctx, t, cfg, c, d, metricsPort, healthPort)
	})

	run("upgrade", release, chartDir(t), "--namespace", ns, "--reuse-values",
		"--set", "replicas=2", "--set", "podDisruptionBudget.enabled=true")
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: manager}, d); err != nil {
		t.Fatalf("after helm upgrade: %v", err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("after helm upgrade --set replicas=2: replicas %v", d.Spec.Replicas)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: manager}, &policyv1.PodDisruptionBudget{}); err != nil {
		t.Errorf("after helm upgrade with podDisruptionBudget.enabled: %v", err)
	}
	// The built-in roles pick up the aggregated ones only where
	// kube-controller-manager runs; check the labels that drive it.
	cr := &rbacv1.ClusterRole{}
	if err := c.Get(ctx, client.ObjectKey{Name: release + "-aggregate-to-view"}, cr); err != nil {
		t.Errorf("aggregate-to-view ClusterRole: %v", err)
	} else if cr.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "true" {
		t.Errorf("aggregate-to-view ClusterRole labels: %v", cr.Labels)
	}

	run("uninstall", release, "--namespace", ns, "--wait", "--timeout", "1m")
	err = c.Get(ctx, client.ObjectKey{Name: manager}, &rbacv1.ClusterRole{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall the manager ClusterRole is still there (err=%v)", err)
	}
}

// runManagerAsInstalled builds drover-manager and runs it out of cluster with
// exactly the installed Deployment's arguments, impersonating the installed
// ServiceAccount: the probes must answer on the probe port, metrics on the
// metrics port, the manager must win the Lease, sync its caches and manage a
// CloneSet without a single "forbidden".
func runManagerAsInstalled(ctx context.Context, t *testing.T, cfg *rest.Config, c client.Client, d *appsv1.Deployment, metricsPort, healthPort int) {
	bin := filepath.Join(t.TempDir(), "drover-manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/drover-manager")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building drover-manager: %v\n%s", err, out)
	}

	ns, sa := d.Namespace, d.Spec.Template.Spec.ServiceAccountName
	kubeconfig := writeKubeconfig(t, cfg, "system:serviceaccount:"+ns+":"+sa,
		"system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
	args := managerContainer(t, d).Args
	logs := &syncBuffer{}
	mctx, stop := context.WithCancel(ctx)
	cmd := exec.CommandContext(mctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE="+ns, "POD_NAME="+d.Name+"-test")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		stop()
		<-exited
		if t.Failed() {
			t.Logf("drover-manager %s\n%s", strings.Join(args, " "), logs.String())
		}
	}()

	waitFor := func(what string, timeout time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !ok() {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("drover-manager exited (%v) while waiting for %s", err, what)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
		}
	}
	httpOK := func(port int, path string) func() bool {
		return func() bool {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && (path != "/metrics" || bytes.Contains(body, []byte("controller_runtime_")))
		}
	}
	// Probe exactly what the kubelet would: the Deployment's probes.
	mc := managerContainer(t, d)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"liveness", mc.LivenessProbe}, {"readiness", mc.ReadinessProbe}} {
		port := int(probePort(t, mc, p.probe))
		if port != healthPort {
			t.Errorf("%s probe port %d is not the health port %d", p.name, port, healthPort)
		}
		waitFor(fmt.Sprintf("the %s probe (GET %s on port %d)", p.name, p.probe.HTTPGet.Path, port), time.Minute,
			httpOK(port, p.probe.HTTPGet.Path))
	}
	if port := int(containerPort(t, mc, "http-metrics")); port != metricsPort {
		t.Errorf("container port http-metrics is %d, want %d", port, metricsPort)
	}
	waitFor("/metrics on the http-metrics port", time.Minute, httpOK(metricsPort, "/metrics"))

	// Controllers start only after the Lease is won and the caches synced.
	waitFor("the controllers to start (Lease won, caches synced)", time.Minute, func() bool {
		return strings.Contains(logs.String(), "Starting workers")
	})
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "drover-manager.drover.dev"}, lease); err != nil {
		t.Errorf("leader election Lease in the release namespace: %v", err)
	} else if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("leader election Lease has no holder: %+v", lease.Spec)
	}

	// Exercise the write permissions: pods, revisions, status, events.
	const appNS = "chart-smoke"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}},
		// No kube-controller-manager here to create the default ServiceAccount.
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: appNS}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.drover.dev/v1alpha1",
		"kind":       "CloneSet",
		"metadata":   map[string]any{"name": "smoke", "namespace": appNS},
		"spec": map[string]any{
			"replicas": int64(2),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "smoke"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "smoke"}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "app", "image": "registry.example/smoke:v1"},
				}},
			},
		},
	}}
	if err := c.Create(ctx, cs); err != nil {
		t.Fatalf("creating a CloneSet: %v", err)
	}
	waitFor("the manager to create the CloneSet's pods and report status", time.Minute, func() bool {
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(appNS), client.MatchingLabels{"app": "smoke"}); err != nil {
			return false
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cs), cs); err != nil {
			return false
		}
		observed, _, _ := unstructured.NestedInt64(cs.Object, "status", "observedGeneration")
		return len(pods.Items) == 2 && observed == cs.GetGeneration()
	})
	// The injection webhook: the manager writes a SidecarSet's entry, with
	// the CA of the certificate it made, into the chart's configuration.
	ss := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.drover.dev/v1alpha1",
		"kind":       "SidecarSet",
		"metadata":   map[string]any{"name": "smoke"},
		"spec": map[string]any{
			"selector":   map[string]any{"matchLabels": map[string]any{"app": "smoke"}},
			"containers": []any{map[string]any{"name": "proxy", "image": "registry.example/proxy:v1"}},
		},
	}}
	if err := c.Create(ctx, ss); err != nil {
		t.Fatalf("creating a SidecarSet: %v", err)
	}
	configName := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--webhook-config-name="); ok {
			configName = v
		}
	}
	waitFor("the manager to write the SidecarSet's webhook entry", time.Minute, func() bool {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: configName}, cfg); err != nil || len(cfg.Webhooks) != 1 {
			return false
		}
		w := cfg.Webhooks[0]
		return w.Name == "smoke.sidecarset.apps.drover.dev" && len(w.ClientConfig.CABundle) > 0 &&
			w.ClientConfig.Service != nil && w.ClientConfig.Service.Namespace == ns
	})
	if err := c.Delete(ctx, ss); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.ToLower(logs.String()), "forbidden"); n > 0 {
		t.Errorf("drover-manager hit %d RBAC refusals running as the chart's ServiceAccount", n)
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeKubeconfig writes a kubeconfig for the test API server; with user
// set, requests impersonate that user and groups.
func writeKubeconfig(t testing.TB, cfg *rest.Config, user string, groups ...string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		Impersonate:           user,
		ImpersonateGroups:     groups,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
