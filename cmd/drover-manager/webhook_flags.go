package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover-dev/drover/internal/webhook"
)

// webhookFlagValues are the SidecarSet injection webhook's flags that need
// parsing after flag.Parse.
type webhookFlagValues struct {
	service, secret, failurePolicy string
}

func webhookFlags(o *webhook.Options) *webhookFlagValues {
	v := &webhookFlagValues{failurePolicy: string(admissionregistrationv1.Fail)}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	v.secret = ns + "/drover-webhook-cert"
	flag.StringVar(&o.BindAddress, "webhook-bind-address", o.BindAddress, "Address the SidecarSet injection webhook listens on (0 disables it).")
	flag.StringVar(&o.URL, "webhook-url", "", "Base URL the API server calls the webhook at, when the manager runs out of cluster (https://localhost:9443). Wins over --webhook-service.")
	flag.StringVar(&v.service, "webhook-service", "", "namespace/name of the Service in front of the webhook (in cluster). Without it or --webhook-url there is no injection webhook.")
	flag.Func("webhook-service-port", "Port of --webhook-service (default 443).", func(s string) error {
		_, err := fmt.Sscanf(s, "%d", &o.ServicePort)
		return err
	})
	flag.StringVar(&o.CertDir, "webhook-cert-dir", "", "Directory the serving certificate is written to (default: a new temporary directory).")
	flag.StringVar(&v.secret, "webhook-cert-secret", v.secret, "namespace/name of the Secret holding the webhook's serving certificate and CA.")
	flag.BoolVar(&o.CertRotation, "webhook-cert-rotation", o.CertRotation, "Create and renew the serving certificate in --webhook-cert-secret (false: cert-manager or another tool writes it).")
	flag.StringVar(&o.ConfigName, "webhook-config-name", o.ConfigName, "MutatingWebhookConfiguration the manager keeps in sync with the SidecarSets.")
	flag.StringVar(&v.failurePolicy, "webhook-failure-policy", v.failurePolicy, "failurePolicy of the injection webhook entries: Fail (a selected pod is refused while the webhook is down) or Ignore (it is created without its sidecars).")
	return v
}

func (v *webhookFlagValues) apply(o *webhook.Options) error {
	var err error
	if v.service != "" {
		if o.Service, err = namespacedName("--webhook-service", v.service); err != nil {
			return err
		}
	}
	if o.CertSecret, err = namespacedName("--webhook-cert-secret", v.secret); err != nil {
		return err
	}
	switch p := admissionregistrationv1.FailurePolicyType(v.failurePolicy); p {
	case admissionregistrationv1.Fail, admissionregistrationv1.Ignore:
		o.FailurePolicy = p
	default:
		return fmt.Errorf("--webhook-failure-policy must be Fail or Ignore, not %q", v.failurePolicy)
	}
	o.ExcludeNamespaces = []string{"kube-system"}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.ExcludeNamespaces = append(o.ExcludeNamespaces, ns)
	}
	return nil
}

func namespacedName(flagName, s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, fmt.Errorf("%s must be namespace/name, not %q", flagName, s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
