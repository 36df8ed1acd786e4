package webhook

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func TestEntryIsScopedBySidecarSet(t *testing.T) {
	ss := &appsv1alpha1.SidecarSet{ObjectMeta: metav1.ObjectMeta{Name: "mesh"}, Spec: appsv1alpha1.SidecarSetSpec{
		Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}},
	}}
	cc, _, err := Options{URL: "https://localhost:9443"}.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := Entry(ss, cc(InjectPath+ss.Name), []byte("CA"), []string{"kube-system", "drover-system"}, "")
	if e.Name != "mesh.sidecarset.apps.drover.dev" || *e.ClientConfig.URL != "https://localhost:9443/inject-sidecarset/mesh" || string(e.ClientConfig.CABundle) != "CA" {
		t.Errorf("entry: %s %v", e.Name, e.ClientConfig)
	}
	if e.ObjectSelector.MatchLabels["app"] != "web" || e.NamespaceSelector.MatchLabels["mesh"] != "on" {
		t.Errorf("selectors: %v %v", e.ObjectSelector, e.NamespaceSelector)
	}
	ex := e.NamespaceSelector.MatchExpressions
	if len(ex) != 1 || ex[0].Operator != metav1.LabelSelectorOpNotIn || ex[0].Values[0] != "drover-system" || ex[0].Values[1] != "kube-system" {
		t.Errorf("excluded namespaces: %+v", ex)
	}
	if *e.FailurePolicy != admissionregistrationv1.Fail || *e.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		len(e.Rules) != 1 || e.Rules[0].Operations[0] != admissionregistrationv1.Create {
		t.Errorf("policy: %v %v %+v", *e.FailurePolicy, *e.SideEffects, e.Rules)
	}
	if ss.Spec.NamespaceSelector.MatchExpressions != nil {
		t.Error("the SidecarSet's selector was modified")
	}
}

func TestClientConfig(t *testing.T) {
	if _, _, err := (Options{URL: "https://127.0.0.1:9443"}).clientConfig(); err == nil {
		t.Error("an IP address cannot be verified against cert-controller's DNS-only certificate")
	}
	if _, _, err := (Options{URL: "http://localhost:9443"}).clientConfig(); err == nil {
		t.Error("http must be refused")
	}
	cc, names, err := Options{Service: types.NamespacedName{Namespace: "drover-system", Name: "drover-webhook"}, ServicePort: 443}.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if names[0] != "drover-webhook.drover-system.svc" {
		t.Errorf("certificate names: %v", names)
	}
	svc := cc("/x").Service
	if svc == nil || svc.Name != "drover-webhook" || *svc.Path != "/x" || *svc.Port != 443 {
		t.Errorf("service reference: %+v", svc)
	}
	if (Options{BindAddress: ":9443"}).Enabled() || (Options{BindAddress: "0", URL: "https://localhost"}).Enabled() {
		t.Error("the webhook needs a bind address and a way for the API server to reach it")
	}
}

// The mirror writes the Secret's certificate to the directory the server
// reads and signals CA changes once each.
func TestCertMirror(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "cert"}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	c := fake.NewClientBuilder().WithObjects(secret).Build()
	dir := t.TempDir()
	m := newCertMirror(c, key, dir)
	ctx := context.Background()
	if ok, err := m.sync(ctx); ok || err != nil {
		t.Fatalf("an empty Secret has no certificate yet: %v %v", ok, err)
	}
	secret.Data = map[string][]byte{certFile: []byte("CERT"), keyFile: []byte("KEY"), caFile: []byte("CA1")}
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.sync(ctx); !ok || err != nil {
		t.Fatalf("sync: %v %v", ok, err)
	}
	for name, want := range map[string]string{certFile: "CERT", keyFile: "KEY", caFile: "CA1"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s: %q", name, got)
		}
	}
	if string(m.CA()) != "CA1" || !isClosed(m.ready) || len(m.changed) != 1 {
		t.Fatalf("CA %q ready %v signals %d", m.CA(), isClosed(m.ready), len(m.changed))
	}
	<-m.changed
	if _, err := m.sync(ctx); err != nil || len(m.changed) != 0 {
		t.Fatal("an unchanged CA must not signal")
	}
	secret.Data[caFile] = []byte("CA2")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := m.sync(ctx); err != nil || len(m.changed) != 1 || string(m.CA()) != "CA2" {
		t.Fatalf("a rotated CA must signal: %d %q", len(m.changed), m.CA())
	}
}
