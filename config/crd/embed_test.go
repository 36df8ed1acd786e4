package crd

import "testing"

func TestAllDecodes(t *testing.T) {
	crds, err := All()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range crds {
		found = found || c.Name == "clonesets.apps.drover.dev"
	}
	if !found {
		t.Fatal("the CloneSet CRD is not embedded")
	}
}
