package main

import "testing"

func TestResolveMemoryLimit(t *testing.T) {
	const def = 64 << 20
	cases := []struct {
		name      string
		flag      string
		env       string
		envSet    bool
		container string
		want      memoryLimit
		wantsErr  bool
	}{
		{name: "nothing set: the default", want: memoryLimit{Bytes: def, Source: limitFromDefault}},
		{name: "GOMEMLIMIT wins over the default", env: "300MiB", envSet: true, want: memoryLimit{Source: limitFromEnv}},
		{name: "GOMEMLIMIT=off wins over the default", env: "off", envSet: true, want: memoryLimit{Source: limitFromEnv}},
		{name: "empty GOMEMLIMIT is unset, as for Go", env: "", envSet: true, want: memoryLimit{Bytes: def, Source: limitFromDefault}},
		{name: "flag alone", flag: "200Mi", want: memoryLimit{Bytes: 200 << 20, Source: limitFromFlag}},
		{name: "flag wins over GOMEMLIMIT", flag: "128Mi", env: "300MiB", envSet: true, want: memoryLimit{Bytes: 128 << 20, Source: limitFromFlag}},
		{name: "decimal suffix", flag: "1G", want: memoryLimit{Bytes: 1_000_000_000, Source: limitFromFlag}},
		{name: "plain bytes", flag: "100000000", want: memoryLimit{Bytes: 100_000_000, Source: limitFromFlag}},
		{name: "fraction of a byte rounds up", flag: "1500m", want: memoryLimit{Bytes: 2, Source: limitFromFlag}},
		{name: "0 disables", flag: "0", want: memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}},
		{name: "0Mi disables", flag: "0Mi", want: memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}},
		{name: "off disables, over GOMEMLIMIT too", flag: "off", env: "300MiB", envSet: true, want: memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}},
		{name: "OFF, any case", flag: " OFF ", want: memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}},
		{name: "beyond int64: no limit", flag: "100Ei", want: memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}},
		{name: "negative", flag: "-1Mi", wantsErr: true},
		{name: "Go's unit spelling is not a quantity", flag: "300MiB", wantsErr: true},
		{name: "garbage", flag: "lots", wantsErr: true},
		{name: "container limit less headroom: 256Mi -> 208Mi", container: "268435456",
			want: memoryLimit{Bytes: 208 << 20, Source: limitFromContainer}},
		{name: "container limit: a tenth once it exceeds 48Mi", container: "1Gi",
			want: memoryLimit{Bytes: 1024<<20 - (1024<<20)/10, Source: limitFromContainer}},
		{name: "small container limit: never under half", container: "64Mi",
			want: memoryLimit{Bytes: 32 << 20, Source: limitFromContainer}},
		{name: "GOMEMLIMIT wins over the container limit", env: "300MiB", envSet: true, container: "268435456",
			want: memoryLimit{Source: limitFromEnv}},
		{name: "flag wins over the container limit", flag: "100Mi", container: "268435456",
			want: memoryLimit{Bytes: 100 << 20, Source: limitFromFlag}},
		{name: "empty GOMEMLIMIT leaves the container limit", env: "", envSet: true, container: "268435456",
			want: memoryLimit{Bytes: 208 << 20, Source: limitFromContainer}},
		{name: "blank container limit is unset", container: " ", want: memoryLimit{Bytes: def, Source: limitFromDefault}},
		{name: "container limit not a number", container: "lots", wantsErr: true},
		{name: "container limit zero", container: "0", wantsErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveMemoryLimit(tc.flag, tc.env, tc.envSet, tc.container, def)
			if tc.wantsErr {
				if err == nil {
					t.Fatalf("resolveMemoryLimit(%q, %q, %v) = %+v, want an error", tc.flag, tc.env, tc.envSet, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveMemoryLimit(%q, %q, %v): %v", tc.flag, tc.env, tc.envSet, err)
			}
			if got != tc.want {
				t.Errorf("resolveMemoryLimit(%q, %q, %v) = %+v, want %+v", tc.flag, tc.env, tc.envSet, got, tc.want)
			}
		})
	}
}
