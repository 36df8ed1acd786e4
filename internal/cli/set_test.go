package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/manager"
)

func TestParseSetImageArgs(t *testing.T) {
	ok := []struct {
		args     []string
		name     string
		settings []ImageSetting
	}{
		{[]string{"cloneset/web", "nginx=nginx:1.26"}, "web", []ImageSetting{{"nginx", "nginx:1.26"}}},
		{[]string{"cs/web", "a=x:1", "b=registry:5000/y@sha256:abc"}, "web", []ImageSetting{{"a", "x:1"}, {"b", "registry:5000/y@sha256:abc"}}},
		{[]string{"cloneset", "web", "nginx=nginx:1.26"}, "web", []ImageSetting{{"nginx", "nginx:1.26"}}},
		{[]string{"CloneSets.apps.drover.dev/web", "*=nginx:1.27"}, "web", []ImageSetting{{"*", "nginx:1.27"}}},
	}
	for _, tc := range ok {
		name, settings, err := ParseSetImageArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if name != tc.name || len(settings) != len(tc.settings) {
			t.Errorf("%q: got %q %v", tc.args, name, settings)
			continue
		}
		for i := range settings {
			if settings[i] != tc.settings[i] {
				t.Errorf("%q: got %v, want %v", tc.args, settings, tc.settings)
			}
		}
	}

	bad := []struct {
		args []string
		want string
	}{
		{nil, "missing the CloneSet and images"},
		{[]string{"cloneset/web"}, "no CONTAINER=IMAGE given for cloneset/web"},
		{[]string{"cloneset"}, `missing the CloneSet name after "cloneset"`},
		{[]string{"cloneset", "nginx=nginx:1"}, `missing the CloneSet name after "cloneset"`},
		{[]string{"nginx=nginx:1"}, `missing the CloneSet before "nginx=nginx:1"`},
		{[]string{"deployment/web", "nginx=nginx:1"}, `unsupported resource type "deployment"`},
		{[]string{"pod", "web", "nginx=nginx:1"}, `unsupported resource type "pod"`},
		{[]string{"cloneset/", "nginx=nginx:1"}, `empty CloneSet name`},
		{[]string{"cloneset/web", "nginx"}, `"nginx" is not CONTAINER=IMAGE`},
		{[]string{"cloneset/web", "nginx="}, `"nginx=" is not CONTAINER=IMAGE`},
		{[]string{"cloneset/web", "=nginx:1"}, `"=nginx:1" is not CONTAINER=IMAGE`},
		{[]string{"cloneset/web", "a=x:1", "a=x:2"}, `container "a" given twice`},
		{[]string{"cloneset/web", "*=x:1", "a=x:2"}, `do not combine it`},
	}
	for _, tc := range bad {
		_, _, err := ParseSetImageArgs(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func fakeClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

func twoContainerCloneSet() *appsv1alpha1.CloneSet {
	cs := demoCloneSet()
	cs.Name = "web"
	cs.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1"}}
	cs.Spec.Template.Spec.Containers = []corev1.Container{{Name: "a", Image: "a:1"}, {Name: "b", Image: "b:1"}}
	return cs
}

func getCS(t *testing.T, c client.Client, name string) *appsv1alpha1.CloneSet {
	t.Helper()
	cs := &appsv1alpha1.CloneSet{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func images(cs *appsv1alpha1.CloneSet) string {
	var parts []string
	for _, c := range append(append([]corev1.Container(nil), cs.Spec.Template.Spec.InitContainers...), cs.Spec.Template.Spec.Containers...) {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ",")
}

func TestSetImage(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t, twoContainerCloneSet())
	var out bytes.Buffer

	if err := SetImage(ctx, c, "default", "web", []ImageSetting{{"b", "b:2"}}, &out); err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=busybox:1,a=a:1,b=b:2" {
		t.Errorf("images %s", got)
	}
	if want := "cloneset.apps.drover.dev/web image updated\n  b: b:1 -> b:2\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}

	out.Reset()
	if err := SetImage(ctx, c, "default", "web", []ImageSetting{{"b", "b:2"}}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "unchanged") {
		t.Errorf("no-op output %q", out.String())
	}

	out.Reset()
	if err := SetImage(ctx, c, "default", "web", []ImageSetting{{"init", "busybox:2"}, {"a", "a:3"}}, &out); err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=busybox:2,a=a:3,b=b:2" {
		t.Errorf("images %s", got)
	}

	if err := SetImage(ctx, c, "default", "web", []ImageSetting{{"*", "all:9"}}, &out); err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=all:9,a=all:9,b=all:9" {
		t.Errorf("images %s", got)
	}
}

func TestSetImageErrors(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t, twoContainerCloneSet())
	before := images(getCS(t, c, "web"))

	err := SetImage(ctx, c, "default", "web", []ImageSetting{{"a", "a:2"}, {"x", "x:1"}}, &bytes.Buffer{})
	want := `container "x" not found in cloneset/web; containers: a, b; init containers: init`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if got := images(getCS(t, c, "web")); got != before {
		t.Errorf("a failed set image changed the template: %s", got)
	}

	err = SetImage(ctx, c, "default", "missing", []ImageSetting{{"a", "a:2"}}, &bytes.Buffer{})
	if err == nil || err.Error() != `cloneset "missing" not found in namespace "default"` {
		t.Errorf("error %v", err)
	}
	err = SetImage(ctx, c, "other", "web", []ImageSetting{{"a", "a:2"}}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `namespace "other"`) {
		t.Errorf("error %v", err)
	}
}

// testFactory serves a fixed client and namespace.
type testFactory struct {
	c  client.Client
	ns string
}

func (f testFactory) RESTConfig() (*rest.Config, error) {
	return &rest.Config{Host: "http://127.0.0.1:1"}, nil
}
func (f testFactory) Client() (client.Client, error) { return f.c, nil }
func (f testFactory) Namespace() (string, error)     { return f.ns, nil }

func runCLI(t *testing.T, f Factory, name string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, name, f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestSetImageCommand(t *testing.T) {
	c := fakeClient(t, twoContainerCloneSet())
	f := testFactory{c: c, ns: "default"}

	if _, _, err := runCLI(t, f, "drover", "set", "image", "cloneset", "web", "a=a:2"); err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=busybox:1,a=a:2,b=b:1" {
		t.Errorf("images %s", got)
	}
	_, _, err := runCLI(t, f, "drover", "set", "image", "cloneset/web", "x=x:1")
	if err == nil || !strings.Contains(err.Error(), `container "x" not found in cloneset/web; containers: a, b`) {
		t.Errorf("error %v", err)
	}
	_, _, err = runCLI(t, f, "drover", "set", "image", "deploy/web", "x=x:1")
	if err == nil || !strings.Contains(err.Error(), `unsupported resource type "deploy"`) {
		t.Errorf("error %v", err)
	}
}

func TestGetCommand(t *testing.T) {
	s := midUpdate(t)
	objs := []client.Object{s.CloneSet}
	for i := range s.Revisions {
		objs = append(objs, &s.Revisions[i])
	}
	for i := range s.Pods {
		objs = append(objs, &s.Pods[i])
	}
	// A pod matching the selector but owned by someone else is not shown.
	stray := mkPod(s.CloneSet, "web-frontend-stray", s.Revisions[0].Name, "node-0", "127.1.0.7", 0)
	stray.OwnerReferences = nil
	objs = append(objs, &stray)
	f := testFactory{c: fakeClient(t, objs...), ns: "default"}

	for _, args := range [][]string{
		{"get", "cloneset", "web-frontend"},
		{"get", "cs", "web-frontend"},
		{"get", "cs/web-frontend"},
		{"get", "cloneset.apps.drover.dev", "web-frontend"},
	} {
		out, _, err := runCLI(t, f, "drover", args...)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if !strings.Contains(normalise(out), "updated 2/3 (partition 2 keeps 2 on the old revision)") ||
			strings.Count(out, "web-frontend-") < 7 || strings.Contains(out, "stray") {
			t.Errorf("%q output:\n%s", args, out)
		}
	}
	out, _, err := runCLI(t, f, "drover", "get", "cloneset")
	if err != nil || !strings.Contains(normalise(out), "web-frontend 5 2/3 4 4 InPlaceIfPossible 2 Updating") {
		t.Errorf("list: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, f, "drover", "get", "cloneset", "nope"); err == nil || err.Error() != `cloneset "nope" not found in namespace "default"` {
		t.Errorf("not found: %v", err)
	}
	if _, _, err := runCLI(t, f, "drover", "get", "deployment", "x"); err == nil || !strings.Contains(err.Error(), `unsupported resource type "deployment"`) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestWatchPrintsChangesOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	ticks := 0
	render := func(w io.Writer, now time.Time) error {
		if !now.Equal(time.Unix(0, 0)) {
			ticks++
		}
		switch {
		case ticks <= 2:
			fmt.Fprintf(w, "A age=%d\n", now.Unix()%2) // the age differs, the content does not
		case ticks == 3:
			fmt.Fprintln(w, "B")
		default:
			cancel()
		}
		return nil
	}
	if err := watchLoop(ctx, &out, time.Millisecond, render); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`--- \S+`).ReplaceAllString(out.String(), "--- TIME")
	if !strings.HasPrefix(got, "A age=") || !strings.HasSuffix(got, "\n\n--- TIME\nB\n") || strings.Count(got, "A age") != 1 {
		t.Errorf("watch output:\n%s", out.String())
	}
}

func TestVersionWithoutCluster(t *testing.T) {
	out, _, err := runCLI(t, testFactory{}, "kubectl drover", "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Client Version: ") || !strings.Contains(out, "Server Version: unavailable") {
		t.Errorf("output:\n%s", out)
	}
	out, _, err = runCLI(t, testFactory{}, "kubectl drover", "version", "--client")
	if err != nil || strings.Contains(out, "Server") {
		t.Errorf("--client: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, testFactory{}, "kubectl drover", "set", "image", "--help")
	if err != nil || !strings.Contains(out, "kubectl drover set image cloneset/NAME") {
		t.Errorf("help should use the plugin name: %v\n%s", err, out)
	}
}
