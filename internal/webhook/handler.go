package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/webhook/injection"
)

// InjectPath is the path prefix of the injection webhook; each SidecarSet's
// webhook entry calls InjectPath + <SidecarSet name>, so one call injects
// one SidecarSet, in the order of the configuration's entries.
const InjectPath = "/inject-sidecarset/"

type sidecarSetKey struct{}

// injector is the admission handler that injects one SidecarSet into a pod
// being created.
type injector struct {
	// reader reads SidecarSets and namespaces (the manager's cache).
	reader  client.Reader
	decoder admission.Decoder
}

// newInjectHandler returns the http.Handler to register at InjectPath.
func newInjectHandler(reader client.Reader, scheme *runtime.Scheme) http.Handler {
	inj := &injector{reader: reader, decoder: admission.NewDecoder(scheme)}
	return &admission.Webhook{
		Handler: inj,
		WithContextFunc: func(ctx context.Context, r *http.Request) context.Context {
			return context.WithValue(ctx, sidecarSetKey{}, strings.TrimPrefix(r.URL.Path, InjectPath))
		},
		RecoverPanic: ptrTrue(),
	}
}

func ptrTrue() *bool { t := true; return &t }

// Handle injects the SidecarSet named by the request path. A SidecarSet
// that no longer exists or no longer selects the pod (the API server
// called us with a configuration a moment older than the SidecarSet)
// leaves the pod unchanged.
func (i *injector) Handle(ctx context.Context, req admission.Request) admission.Response {
	name, _ := ctx.Value(sidecarSetKey{}).(string)
	log := ctrl.LoggerFrom(ctx).WithValues("sidecarset", name, "namespace", req.Namespace)
	if req.Operation != "CREATE" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("not a pod creation")
	}
	if name == "" || strings.Contains(name, "/") {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("no SidecarSet named in path %q", InjectPath+name))
	}
	pod := &corev1.Pod{}
	if err := i.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err))
	}
	ss := &appsv1alpha1.SidecarSet{}
	if err := i.reader.Get(ctx, client.ObjectKey{Name: name}, ss); err != nil {
		if apierrors.IsNotFound(err) {
			return admission.Allowed("SidecarSet " + name + " no longer exists")
		}
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading SidecarSet %s: %w", name, err))
	}
	if ss.DeletionTimestamp != nil {
		return admission.Allowed("SidecarSet " + name + " is being deleted")
	}
	var nsLabels map[string]string
	if ss.Spec.NamespaceSelector != nil {
		ns := &metav1.PartialObjectMetadata{}
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		if err := i.reader.Get(ctx, client.ObjectKey{Name: req.Namespace}, ns); err != nil {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", req.Namespace, err))
		}
		nsLabels = ns.Labels
		if nsLabels == nil {
			nsLabels = map[string]string{}
		}
	}
	ok, err := injection.Matches(ss, pod.Labels, nsLabels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if !ok {
		return admission.Allowed("SidecarSet " + name + " does not select this pod")
	}
	if !injection.Inject(pod, ss) {
		return admission.Allowed("already injected by SidecarSet " + name)
	}
	out, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding the pod: %w", err))
	}
	log.V(1).Info("injected", "pod", podName(pod))
	return admission.PatchResponseFromRaw(req.Object.Raw, out)
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}
