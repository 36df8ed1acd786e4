package main

import "testing"

func TestResolveMemoryLimit(t *testing.T) {
	const def = 64 << 20
	cases := []struct {
		name     string
		flag     string
		env      string
		envSet   bool
		want     memoryLimit
		wantsErr bool
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveMemoryLimit(tc.flag, tc.env, tc.envSet, def)
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
