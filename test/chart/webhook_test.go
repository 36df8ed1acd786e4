package chart

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The SidecarSet injection webhook: the manager is told how the API server
// reaches it (the Service, which targets the container's webhook port),
// which Secret holds its certificate and which configuration to keep; its
// RBAC reaches that one configuration and that one Secret's namespace.
func TestRenderWebhook(t *testing.T) {
	objs := render(t)
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName))
	c := managerContainer(t, d)
	for _, a := range []string{
		"--webhook-bind-address=:9443",
		"--webhook-service=" + releaseNamespace + "/" + managerName + "-webhook",
		"--webhook-service-port=443",
		"--webhook-cert-secret=" + releaseNamespace + "/" + managerName + "-webhook-cert",
		"--webhook-cert-rotation=true",
		"--webhook-config-name=drover-sidecar-injector",
		"--webhook-failure-policy=Fail",
	} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("manager args %q lack %q", c.Args, a)
		}
	}
	if containerPort(t, c, "webhook") != 9443 {
		t.Errorf("container port webhook: want 9443")
	}
	svc := typed[corev1.Service](t, one(t, objs, "Service", managerName+"-webhook"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("webhook") {
		t.Errorf("webhook Service ports: %+v", svc.Spec.Ports)
	}
	if !labelsSelect(svc.Spec.Selector, d.Spec.Template.Labels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("webhook Service selector %v does not select the manager pods", svc.Spec.Selector)
	}
	mwc := typed[admissionregistrationv1.MutatingWebhookConfiguration](t, one(t, objs, "MutatingWebhookConfiguration", "drover-sidecar-injector"))
	if len(mwc.Webhooks) != 0 {
		t.Errorf("the chart's configuration must start empty (the manager writes one entry per SidecarSet): %+v", mwc.Webhooks)
	}
	one(t, objs, "Secret", managerName+"-webhook-cert")
	cr := typed[rbacv1.ClusterRole](t, one(t, objs, "ClusterRole", managerName+"-webhook"))
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].ResourceNames, []string{"drover-sidecar-injector"}) || slices.Contains(cr.Rules[0].Verbs, "create") {
		t.Errorf("webhook ClusterRole must reach only its configuration, without create: %+v", cr.Rules)
	}
	role := typed[rbacv1.Role](t, one(t, objs, "Role", managerName+"-webhook"))
	for _, r := range role.Rules {
		if slices.ContainsFunc(r.Verbs, func(v string) bool { return v == "update" || v == "patch" || v == "create" || v == "delete" }) &&
			!slices.Equal(r.ResourceNames, []string{managerName + "-webhook-cert"}) {
			t.Errorf("Secret writes must be limited to the certificate Secret: %+v", r)
		}
	}
	// The root filesystem is read-only: the certificate goes to /tmp.
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }) {
		t.Errorf("no writable /tmp: %+v", c.VolumeMounts)
	}

	t.Run("cert-manager", func(t *testing.T) {
		objs := render(t, "--set", "webhook.certManager.enabled=true", "--set", "webhook.failurePolicy=Ignore")
		c := managerContainer(t, typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName)))
		for _, a := range []string{"--webhook-cert-rotation=false", "--webhook-failure-policy=Ignore"} {
			if !slices.Contains(c.Args, a) {
				t.Errorf("manager args %q lack %q", c.Args, a)
			}
		}
		mwc := one(t, objs, "MutatingWebhookConfiguration", "drover-sidecar-injector")
		if got := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != releaseNamespace+"/"+managerName+"-webhook-cert" {
			t.Errorf("inject-ca-from: %q", got)
		}
		cert := one(t, objs, "Certificate", managerName+"-webhook-cert")
		dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		if !slices.Contains(dns, managerName+"-webhook."+releaseNamespace+".svc") {
			t.Errorf("certificate dnsNames %v lack the Service's name", dns)
		}
		one(t, objs, "Issuer", managerName+"-webhook")
		if len(ofKind(objs, "Secret")) != 0 {
			t.Error("with cert-manager the chart must not render the Secret (cert-manager writes it)")
		}
		role := typed[rbacv1.Role](t, one(t, objs, "Role", managerName+"-webhook"))
		if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Verbs, []string{"get"}) {
			t.Errorf("with cert-manager the manager only reads the Secret: %+v", role.Rules)
		}
		objs = render(t, "--set", "webhook.certManager.enabled=true", "--set", "webhook.certManager.issuerRef.name=corp-ca",
			"--set", "webhook.certManager.issuerRef.kind=ClusterIssuer")
		if len(ofKind(objs, "Issuer")) != 0 {
			t.Error("with an issuerRef no Issuer is rendered")
		}
	})

	t.Run("disabled", func(t *testing.T) {
		objs := render(t, "--set", "webhook.enabled=false")
		c := managerContainer(t, typed[appsv1.Deployment](t, one(t, objs, "Deployment", managerName)))
		if !slices.Contains(c.Args, "--webhook-bind-address=0") {
			t.Errorf("args %q: the webhook must be off", c.Args)
		}
		for _, k := range []string{"MutatingWebhookConfiguration", "Secret"} {
			if n := len(ofKind(objs, k)); n != 0 {
				t.Errorf("%d %s rendered with the webhook off", n, k)
			}
		}
	})
}
