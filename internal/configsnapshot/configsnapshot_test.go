package configsnapshot

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func cmRef(name string) *corev1.ConfigMapKeySelector {
	return &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k"}
}

func secRef(name string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k"}
}

// everyPlace references a config in every place References reads, and a
// few it must not: image pull secrets, a service account token, a CSI
// driver's secret.
func everyPlace() *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret"}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			}}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d",
				NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-secret"}}}},
			{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		InitContainers: []corev1.Container{{Name: "init",
			Env:     []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmRef("init-env-cm")}}},
			EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-envfrom-secret"}}}},
		}},
		Containers: []corev1.Container{
			{Name: "app",
				Env: []corev1.EnvVar{
					{Name: "PLAIN", Value: "x"},
					{Name: "FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: secRef("env-secret")}},
				},
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "envfrom-cm"}}}},
			},
			{Name: "sidecar", Env: []corev1.EnvVar{{Name: "B", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmRef("vol-cm")}}}},
		},
	}}
}

func TestReferences(t *testing.T) {
	got := References(everyPlace())
	want := []Ref{
		{Kind: KindConfigMap, Name: "envfrom-cm"},
		{Kind: KindConfigMap, Name: "init-env-cm"},
		{Kind: KindConfigMap, Name: "proj-cm"},
		{Kind: KindConfigMap, Name: "vol-cm"},
		{Kind: KindSecret, Name: "env-secret"},
		{Kind: KindSecret, Name: "init-envfrom-secret"},
		{Kind: KindSecret, Name: "proj-secret"},
		{Kind: KindSecret, Name: "vol-secret"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("References:\n got %v\nwant %v", got, want)
	}
	if got := References(&corev1.PodTemplateSpec{}); len(got) != 0 {
		t.Fatalf("References of an empty template: %v", got)
	}
	if got := References(nil); got != nil {
		t.Fatalf("References(nil): %v", got)
	}
}

func TestReferencesOptional(t *testing.T) {
	opt := func(name string, optional *bool) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional}}}
	}
	cases := []struct {
		name string
		tpl  corev1.PodSpec
		want bool
	}{
		{"optional volume", corev1.PodSpec{Volumes: []corev1.Volume{opt("c", ptr.To(true))}}, true},
		{"optional false", corev1.PodSpec{Volumes: []corev1.Volume{opt("c", ptr.To(false))}}, false},
		{"optional unset", corev1.PodSpec{Volumes: []corev1.Volume{opt("c", nil)}}, false},
		{"optional volume, required env", corev1.PodSpec{Volumes: []corev1.Volume{opt("c", ptr.To(true))},
			Containers: []corev1.Container{{Name: "a", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmRef("c")}}}}}}, false},
		{"required env, then optional volume", corev1.PodSpec{
			Containers: []corev1.Container{{Name: "a", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: cmRef("c")}}}}},
			Volumes:    []corev1.Volume{opt("c", ptr.To(true))}}, false},
		{"optional env and envFrom", corev1.PodSpec{Containers: []corev1.Container{{Name: "a",
			Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k", Optional: ptr.To(true)}}}},
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Optional: ptr.To(true)}}},
		}}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := References(&corev1.PodTemplateSpec{Spec: c.tpl})
			if len(got) != 1 || got[0].Optional != c.want {
				t.Fatalf("References = %+v, want one ref with Optional %v", got, c.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	orig := everyPlace()
	configs := map[string]string{
		"ConfigMap/vol-cm":           "vol-cm-1111111111",
		"ConfigMap/proj-cm":          "proj-cm-2222222222",
		"ConfigMap/init-env-cm":      "init-env-cm-3333333333",
		"Secret/vol-secret":          "vol-secret-4444444444",
		"Secret/env-secret":          "env-secret-5555555555",
		"Secret/init-envfrom-secret": "init-envfrom-secret-6666666666",
		// names no reference of its kind: ignored
		"ConfigMap/env-secret": "wrong-kind",
		"Secret/pull":          "pull-should-stay",
		"Secret/csi-secret":    "csi-should-stay",
	}
	got := Rewrite(orig, configs)
	if !equality.Semantic.DeepEqual(orig, everyPlace()) {
		t.Fatal("Rewrite modified its input")
	}
	want := []Ref{
		{Kind: KindConfigMap, Name: "envfrom-cm"}, // not in the map: left alone
		{Kind: KindConfigMap, Name: "init-env-cm-3333333333"},
		{Kind: KindConfigMap, Name: "proj-cm-2222222222"},
		{Kind: KindConfigMap, Name: "vol-cm-1111111111"},
		{Kind: KindSecret, Name: "env-secret-5555555555"},
		{Kind: KindSecret, Name: "init-envfrom-secret-6666666666"},
		{Kind: KindSecret, Name: "proj-secret"}, // not in the map
		{Kind: KindSecret, Name: "vol-secret-4444444444"},
	}
	if refs := References(got); fmt.Sprint(refs) != fmt.Sprint(want) {
		t.Fatalf("references after Rewrite:\n got %v\nwant %v", refs, want)
	}
	// Both references to vol-cm (volume and the sidecar's env) renamed.
	if n := got.Spec.Containers[1].Env[0].ValueFrom.ConfigMapKeyRef.Name; n != "vol-cm-1111111111" {
		t.Fatalf("sidecar env references %s", n)
	}
	if got.Spec.ImagePullSecrets[0].Name != "pull" || got.Spec.Volumes[3].CSI.NodePublishSecretRef.Name != "csi-secret" {
		t.Fatal("Rewrite renamed an image pull secret or a CSI secret")
	}
	// Everything but the names is kept.
	back := Rewrite(got, map[string]string{
		"ConfigMap/vol-cm-1111111111": "vol-cm", "ConfigMap/proj-cm-2222222222": "proj-cm", "ConfigMap/init-env-cm-3333333333": "init-env-cm",
		"Secret/vol-secret-4444444444": "vol-secret", "Secret/env-secret-5555555555": "env-secret", "Secret/init-envfrom-secret-6666666666": "init-envfrom-secret",
	})
	if !equality.Semantic.DeepEqual(back, orig) {
		t.Fatalf("renaming back does not give the original template")
	}

	if Rewrite(orig, nil) != orig || Rewrite(orig, map[string]string{}) != orig {
		t.Fatal("Rewrite with no configs must return the template itself")
	}
}

func TestSnapshotName(t *testing.T) {
	content := map[string][]byte{"data/a": []byte("1"), "data/b": []byte("2")}
	n := SnapshotName("web", "ro", content)
	if !strings.HasPrefix(n, "web-") || len(n) != len("web-")+10 {
		t.Fatalf("SnapshotName = %q, want web-<10 chars>", n)
	}
	for i := range 20 { // map order must not matter
		if again := SnapshotName("web", "ro", map[string][]byte{"data/b": []byte("2"), "data/a": []byte("1")}); again != n {
			t.Fatalf("run %d: %q != %q", i, again, n)
		}
	}
	differ := map[string]string{
		"other value":        SnapshotName("web", "ro", map[string][]byte{"data/a": []byte("1"), "data/b": []byte("3")}),
		"other key":          SnapshotName("web", "ro", map[string][]byte{"data/a": []byte("1"), "data/c": []byte("2")}),
		"key and value glue": SnapshotName("web", "ro", map[string][]byte{"data/a": []byte("1data/b2")}),
		"other rollout":      SnapshotName("web", "ro2", content),
		"empty":              SnapshotName("web", "ro", nil),
	}
	for what, other := range differ {
		if other == n {
			t.Errorf("%s: same name %q", what, n)
		}
	}
	if a, b := SnapshotName("web", "ro", nil), SnapshotName("web", "ro", map[string][]byte{}); a != b {
		t.Errorf("nil and empty content: %q != %q", a, b)
	}

	// A ConfigMap's data and binaryData, a Secret's type, are content.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"a": "1"}}
	bin := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, BinaryData: map[string][]byte{"a": []byte("1")}}
	if SnapshotName("c", "ro", ConfigMapContent(cm)) == SnapshotName("c", "ro", ConfigMapContent(bin)) {
		t.Error("data and binaryData with the same key and value give the same name")
	}
	opaque := &corev1.Secret{Data: map[string][]byte{"a": []byte("1")}, Type: corev1.SecretTypeOpaque}
	basic := &corev1.Secret{Data: map[string][]byte{"a": []byte("1")}, Type: corev1.SecretTypeBasicAuth}
	if SnapshotName("s", "ro", SecretContent(opaque)) == SnapshotName("s", "ro", SecretContent(basic)) {
		t.Error("secret types do not change the name")
	}
}

func TestSnapshotNameLength(t *testing.T) {
	for _, name := range []string{
		strings.Repeat("a", 253),
		strings.Repeat("a", 241) + "-" + strings.Repeat("b", 11), // cut right after the '-'
		strings.Repeat("a", 240) + ".-" + strings.Repeat("b", 11),
		strings.Repeat("a.", 126) + "a",
		strings.Repeat("a", 242),
		"x",
	} {
		n := SnapshotName(name, "ro", map[string][]byte{"data/k": []byte("v")})
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("SnapshotName(%d chars) = %q: %v", len(name), n, errs)
		}
		if len(name) <= 242 && n[:len(name)] != name {
			t.Errorf("SnapshotName(%d chars) shortened a name that fits: %q", len(name), n)
		}
	}
}

func TestLabelValue(t *testing.T) {
	if got := LabelValue("web"); got != "web" {
		t.Fatalf("LabelValue(web) = %q", got)
	}
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60)
	got := LabelValue(long)
	if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
		t.Fatalf("LabelValue(long) = %q: %v", got, errs)
	}
	if other := LabelValue(strings.Repeat("a", 60) + "." + strings.Repeat("c", 60)); other == got {
		t.Fatalf("two long names share a label value %q", got)
	}
}

func TestSnapshots(t *testing.T) {
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "ro-uid"}}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns", Labels: map[string]string{"team": "a"}, ResourceVersion: "7"},
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": {0, 1}},
	}
	snap := ConfigMapSnapshot(cm, ro)
	if snap.Name != SnapshotName("cfg", "web", ConfigMapContent(cm)) || snap.Namespace != "ns" || snap.ResourceVersion != "" {
		t.Fatalf("snapshot meta %+v", snap.ObjectMeta)
	}
	if !ptr.Deref(snap.Immutable, false) {
		t.Fatal("snapshot not immutable")
	}
	if !equality.Semantic.DeepEqual(snap.Data, cm.Data) || !equality.Semantic.DeepEqual(snap.BinaryData, cm.BinaryData) {
		t.Fatalf("snapshot content %v %v", snap.Data, snap.BinaryData)
	}
	snap.BinaryData["b"][0] = 9
	if cm.BinaryData["b"][0] != 0 {
		t.Fatal("snapshot shares binaryData with its config")
	}
	wantLabels := map[string]string{rolloutsv1alpha1.LabelSnapshotOf: "cfg", rolloutsv1alpha1.LabelRollout: "web"}
	if fmt.Sprint(snap.Labels) != fmt.Sprint(wantLabels) || snap.Annotations[rolloutsv1alpha1.LabelSnapshotOf] != "cfg" {
		t.Fatalf("labels %v annotations %v", snap.Labels, snap.Annotations)
	}
	if len(snap.OwnerReferences) != 1 || snap.OwnerReferences[0].UID != "ro-uid" || snap.OwnerReferences[0].Kind != "Rollout" ||
		snap.OwnerReferences[0].APIVersion != "rollouts.drover.dev/v1alpha1" || ptr.Deref(snap.OwnerReferences[0].Controller, false) {
		t.Fatalf("owner references %+v", snap.OwnerReferences)
	}
	if !IsSnapshot(snap) || IsSnapshot(cm) || !OwnedBy(snap, ro) || OwnedBy(cm, ro) {
		t.Fatal("IsSnapshot / OwnedBy")
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Type: corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{"username": []byte("u"), "password": []byte("p")}}
	ssnap := SecretSnapshot(sec, ro)
	if ssnap.Name != SnapshotName("db", "web", SecretContent(sec)) || ssnap.Type != corev1.SecretTypeBasicAuth ||
		!equality.Semantic.DeepEqual(ssnap.Data, sec.Data) || !ptr.Deref(ssnap.Immutable, false) || !OwnedBy(ssnap, ro) {
		t.Fatalf("secret snapshot %+v", ssnap)
	}
	ssnap.Data["password"][0] = 'x'
	if string(sec.Data["password"]) != "p" {
		t.Fatal("snapshot shares data with its secret")
	}
}

func TestUnused(t *testing.T) {
	tpl := func(cm, secret string) *corev1.PodTemplateSpec {
		return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}}},
			Containers: []corev1.Container{{Name: "a", Env: []corev1.EnvVar{{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: secRef(secret)}}}}},
		}}
	}
	cm := func(n string) Ref { return Ref{Kind: KindConfigMap, Name: n} }
	sec := func(n string) Ref { return Ref{Kind: KindSecret, Name: n} }
	snaps := []Ref{cm("cfg-old"), cm("cfg-stable"), cm("cfg-new"), cm("cfg-next"), sec("db-stable"), sec("db-new"), sec("cfg-stable")}
	cases := []struct {
		name      string
		templates []*corev1.PodTemplateSpec
		configs   []map[string]string
		want      []Ref
	}{
		{"nothing references them", nil, nil, snaps},
		{"revisions keep theirs", []*corev1.PodTemplateSpec{tpl("cfg-stable", "db-stable"), tpl("cfg-new", "db-new")}, nil,
			// a Secret named like a referenced ConfigMap is another object
			[]Ref{cm("cfg-old"), cm("cfg-next"), sec("cfg-stable")}},
		{"configs keep theirs, by kind", []*corev1.PodTemplateSpec{tpl("cfg-stable", "db-stable")},
			[]map[string]string{{"ConfigMap/cfg": "cfg-next", "Secret/db": "db-new"}, {"ConfigMap/cfg": "cfg-new"}},
			[]Ref{cm("cfg-old"), sec("cfg-stable")}},
		{"malformed config keys keep nothing", nil, []map[string]string{{"cfg": "cfg-old"}}, snaps},
		{"template of another kind's name", []*corev1.PodTemplateSpec{tpl("db-new", "cfg-old")}, nil, snaps},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Unused(snaps, c.templates, c.configs...)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("Unused:\n got %v\nwant %v", got, c.want)
			}
		})
	}
}
