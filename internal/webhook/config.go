package webhook

import (
	"context"
	"fmt"
	"sort"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// resyncInterval is how often the configuration is compared with the
// SidecarSets even when nothing changed (someone may have edited it).
const resyncInterval = 5 * time.Minute

// EntrySuffix ends the name of every webhook entry: <SidecarSet>.sidecarset.apps.drover.dev.
const EntrySuffix = ".sidecarset.apps.drover.dev"

// LabelManagedBy marks the MutatingWebhookConfiguration the manager keeps.
const labelManagedBy = "app.kubernetes.io/managed-by"

// configSyncer keeps the MutatingWebhookConfiguration in step with the
// SidecarSets: one entry per SidecarSet, whose objectSelector and
// namespaceSelector are the SidecarSet's, so the API server calls the
// webhook only for pods some SidecarSet selects. With no SidecarSet the
// configuration has no entry and pod creation never waits for Drover.
type configSyncer struct {
	client client.Client
	// reader reads the configuration without a cache (one object, read
	// on SidecarSet changes only).
	reader client.Reader
	name   string
	// clientConfig returns how the API server reaches path.
	clientConfig func(path string) admissionregistrationv1.WebhookClientConfig
	ca           func() []byte
	exclude      []string
	failure      admissionregistrationv1.FailurePolicyType
	// annotations are kept on the configuration (cert-manager's
	// inject-ca-from, when the chart uses cert-manager).
	annotations map[string]string
}

// Reconcile writes the configuration. The request is always the
// configuration's name: every SidecarSet change leads here.
func (s *configSyncer) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	ca := s.ca()
	if len(ca) == 0 {
		// Entries without the CA would make the API server refuse every
		// selected pod; wait for the certificate (the mirror requeues us).
		log.Info("waiting for the webhook CA before writing the webhook configuration")
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}
	var list appsv1alpha1.SidecarSetList
	if err := s.client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing SidecarSets: %w", err)
	}
	want := s.webhooks(list.Items, ca)

	cur := &admissionregistrationv1.MutatingWebhookConfiguration{}
	err := s.reader.Get(ctx, client.ObjectKey{Name: s.name}, cur)
	if apierrors.IsNotFound(err) {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: map[string]string{labelManagedBy: "drover-manager"}, Annotations: s.annotations},
			Webhooks:   want,
		}
		if err := s.client.Create(ctx, cfg); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating MutatingWebhookConfiguration %s: %w", s.name, err)
		}
		log.Info("created the sidecar injection webhook configuration", "name", s.name, "entries", len(want))
		return reconcile.Result{RequeueAfter: resyncInterval}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", s.name, err)
	}
	if apiequality.Semantic.DeepEqual(cur.Webhooks, want) && len(cur.Webhooks) == len(want) {
		return reconcile.Result{RequeueAfter: resyncInterval}, nil
	}
	cur.Webhooks = want
	if err := s.client.Update(ctx, cur); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return reconcile.Result{}, fmt.Errorf("updating MutatingWebhookConfiguration %s: %w", s.name, err)
	}
	log.Info("updated the sidecar injection webhook configuration", "name", s.name, "entries", len(want))
	return reconcile.Result{RequeueAfter: resyncInterval}, nil
}

// webhooks builds the entries, ordered by SidecarSet name (the order in
// which the API server calls them, so the order of injection).
func (s *configSyncer) webhooks(sets []appsv1alpha1.SidecarSet, ca []byte) []admissionregistrationv1.MutatingWebhook {
	sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
	var out []admissionregistrationv1.MutatingWebhook
	for i := range sets {
		ss := &sets[i]
		if ss.DeletionTimestamp != nil || ss.Spec.Selector == nil {
			continue
		}
		out = append(out, Entry(ss, s.clientConfig(InjectPath+ss.Name), ca, s.exclude, s.failure))
	}
	return out
}

// Entry is the webhook entry of one SidecarSet.
func Entry(ss *appsv1alpha1.SidecarSet, cc admissionregistrationv1.WebhookClientConfig, ca []byte, exclude []string, failure admissionregistrationv1.FailurePolicyType) admissionregistrationv1.MutatingWebhook {
	cc.CABundle = ca
	nsSel := &metav1.LabelSelector{}
	if ss.Spec.NamespaceSelector != nil {
		nsSel = ss.Spec.NamespaceSelector.DeepCopy()
	}
	if len(exclude) > 0 {
		ex := append([]string(nil), exclude...)
		sort.Strings(ex)
		nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: ex,
		})
	}
	if failure == "" {
		failure = admissionregistrationv1.Fail
	}
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.MutatingWebhook{
		Name:         ss.Name + EntrySuffix,
		ClientConfig: cc,
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope,
			},
		}},
		FailurePolicy:           &failure,
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector:       nsSel,
		ObjectSelector:          ss.Spec.Selector.DeepCopy(),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](10),
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
	}
}
