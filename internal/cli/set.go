package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// setImageAttempts is how often set image retries when the CloneSet's
// containers changed between reading and patching it.
const setImageAttempts = 3

func newSetCommand(env *cmdEnv) *cobra.Command {
	set := &cobra.Command{
		Use:   "set",
		Short: "Change a workload's pod template",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	image := &cobra.Command{
		Use:   "image cloneset/NAME CONTAINER=IMAGE [CONTAINER=IMAGE...]",
		Short: "Update container images of a CloneSet's pod template",
		Long: `Update one or more container images of a CloneSet's pod template. With an
InPlaceIfPossible or InPlaceOnly update strategy the pods are updated in
place: same pod names and IPs, the changed containers restart.

The CloneSet may be named cloneset/NAME (also cs/NAME) or "cloneset NAME".
CONTAINER "*" sets every container (and init container). Init containers
are matched by name too.`,
		Example: env.examples(
			"drover set image cloneset/web-frontend nginx=nginx:1.26",
			"drover set image cs web-frontend nginx=nginx:1.26 sidecar=envoy:v1.31",
			"drover set image cloneset/web-frontend '*=nginx:1.27' -n shop",
		),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, images, err := ParseSetImageArgs(args)
			if err != nil {
				return err
			}
			c, ns, err := env.connect()
			if err != nil {
				return err
			}
			return SetImage(cmd.Context(), c, ns, name, images, env.streams.Out)
		},
	}
	set.AddCommand(image)
	return set
}

// ImageSetting is one CONTAINER=IMAGE argument.
type ImageSetting struct {
	Container string
	Image     string
}

// ParseSetImageArgs parses `set image` arguments: "cloneset/NAME" or
// "cloneset NAME", then one or more CONTAINER=IMAGE.
func ParseSetImageArgs(args []string) (string, []ImageSetting, error) {
	const usage = "usage: set image cloneset/NAME CONTAINER=IMAGE [CONTAINER=IMAGE...]"
	if len(args) == 0 {
		return "", nil, fmt.Errorf("missing the CloneSet and images; %s", usage)
	}
	var name string
	rest := args[1:]
	if typ, n, ok := strings.Cut(args[0], "/"); ok {
		if !isCloneSetType(typ) {
			return "", nil, fmt.Errorf("unsupported resource type %q: set image works on clonesets; %s", typ, usage)
		}
		name = n
	} else {
		if strings.Contains(args[0], "=") {
			return "", nil, fmt.Errorf("missing the CloneSet before %q; %s", args[0], usage)
		}
		if !isCloneSetType(args[0]) {
			return "", nil, fmt.Errorf("unsupported resource type %q: set image works on clonesets; %s", args[0], usage)
		}
		if len(rest) == 0 || strings.Contains(rest[0], "=") {
			return "", nil, fmt.Errorf("missing the CloneSet name after %q; %s", args[0], usage)
		}
		name, rest = rest[0], rest[1:]
	}
	if name == "" {
		return "", nil, fmt.Errorf("empty CloneSet name in %q; %s", args[0], usage)
	}
	if len(rest) == 0 {
		return "", nil, fmt.Errorf("no CONTAINER=IMAGE given for cloneset/%s; %s", name, usage)
	}
	seen := map[string]bool{}
	settings := make([]ImageSetting, 0, len(rest))
	for _, a := range rest {
		container, image, ok := strings.Cut(a, "=")
		if !ok {
			return "", nil, fmt.Errorf("%q is not CONTAINER=IMAGE", a)
		}
		if container == "" || strings.TrimSpace(image) == "" || strings.ContainsAny(image, " \t") {
			return "", nil, fmt.Errorf("%q is not CONTAINER=IMAGE: both must be non-empty, without spaces", a)
		}
		if seen[container] {
			return "", nil, fmt.Errorf("container %q given twice", container)
		}
		seen[container] = true
		settings = append(settings, ImageSetting{Container: container, Image: image})
	}
	if seen["*"] && len(settings) > 1 {
		return "", nil, fmt.Errorf(`"*" sets every container; do not combine it with named containers`)
	}
	return name, settings, nil
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// imageChange is one container whose image changes.
type imageChange struct {
	container, from, to string
}

// SetImage patches the images of a CloneSet's template and reports what
// changed to out. The JSON patch checks each container's name at its
// index, so a concurrent reordering fails the patch (and it is retried)
// instead of changing the wrong container.
func SetImage(ctx context.Context, c client.Client, namespace, name string, settings []ImageSetting, out io.Writer) error {
	var lastErr error
	var lastPatch []byte
	for attempt := 0; attempt < setImageAttempts; attempt++ {
		cs := &appsv1alpha1.CloneSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cs); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("cloneset %q not found in namespace %q", name, namespace)
			}
			return fmt.Errorf("getting cloneset %s/%s: %w", namespace, name, err)
		}
		ops, changes, err := imagePatch(cs, settings)
		if err != nil {
			return err
		}
		ref := "cloneset.apps.drover.dev/" + name
		if len(changes) == 0 {
			fmt.Fprintf(out, "%s unchanged (images already set)\n", ref)
			return nil
		}
		data, err := json.Marshal(ops)
		if err != nil {
			return fmt.Errorf("encoding patch: %w", err)
		}
		if lastErr != nil && string(data) == string(lastPatch) {
			// The containers did not move: the server refuses the change
			// itself (for example an image the schema rejects).
			break
		}
		lastPatch = data
		err = c.Patch(ctx, cs, client.RawPatch(types.JSONPatchType, data))
		if err == nil {
			fmt.Fprintf(out, "%s image updated\n", ref)
			for _, ch := range changes {
				fmt.Fprintf(out, "  %s: %s -> %s\n", ch.container, ch.from, ch.to)
			}
			return nil
		}
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("cloneset %q not found in namespace %q", name, namespace)
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("patching %s in %s: %w", ref, namespace, err)
		}
		lastErr = err
	}
	return fmt.Errorf("patching cloneset/%s in %s: %w", name, namespace, lastErr)
}

// imagePatch builds the JSON patch for settings, or an error naming the
// containers that exist when one is unknown.
func imagePatch(cs *appsv1alpha1.CloneSet, settings []ImageSetting) ([]jsonPatchOp, []imageChange, error) {
	spec := &cs.Spec.Template.Spec
	var ops []jsonPatchOp
	var changes []imageChange
	visit := func(list []corev1.Container, field string, match func(string) bool) int {
		n := 0
		for i, ctr := range list {
			if !match(ctr.Name) {
				continue
			}
			n++
			s := settings[0]
			for _, x := range settings {
				if x.Container == ctr.Name {
					s = x
				}
			}
			if ctr.Image == s.Image {
				continue
			}
			base := fmt.Sprintf("/spec/template/spec/%s/%d", field, i)
			ops = append(ops,
				jsonPatchOp{Op: "test", Path: base + "/name", Value: ctr.Name},
				jsonPatchOp{Op: "replace", Path: base + "/image", Value: s.Image},
			)
			changes = append(changes, imageChange{container: ctr.Name, from: ctr.Image, to: s.Image})
		}
		return n
	}
	if len(settings) == 1 && settings[0].Container == "*" {
		all := func(string) bool { return true }
		visit(spec.InitContainers, "initContainers", all)
		visit(spec.Containers, "containers", all)
		return ops, changes, nil
	}
	for _, s := range settings {
		is := func(n string) bool { return n == s.Container }
		found := visit(spec.InitContainers, "initContainers", is) + visit(spec.Containers, "containers", is)
		if found == 0 {
			return nil, nil, fmt.Errorf("container %q not found in cloneset/%s; %s", s.Container, cs.Name, containerList(spec))
		}
	}
	return ops, changes, nil
}

func containerList(spec *corev1.PodSpec) string {
	names := func(list []corev1.Container) string {
		n := make([]string, 0, len(list))
		for _, c := range list {
			n = append(n, c.Name)
		}
		return strings.Join(n, ", ")
	}
	s := "containers: " + names(spec.Containers)
	if len(spec.InitContainers) > 0 {
		s += "; init containers: " + names(spec.InitContainers)
	}
	return s
}
