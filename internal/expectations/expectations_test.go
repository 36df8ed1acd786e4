package expectations

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

type cache map[string]Observed

func (c cache) lookup(name string) Observed { return c[name] }

func TestCreateWaitsForCache(t *testing.T) {
	s := New(clocktesting.NewFakePassiveClock(time.Now()), 0)
	c := cache{}
	s.ExpectCreate("ns/web", "web-abcde")
	if ok, pending := s.Satisfied("ns/web", c.lookup); ok || len(pending) != 1 {
		t.Fatalf("create not yet in cache must be pending, got ok=%v %v", ok, pending)
	}
	c["web-abcde"] = Observed{Exists: true}
	if ok, _ := s.Satisfied("ns/web", c.lookup); !ok {
		t.Fatal("create seen in cache must satisfy")
	}
}

func TestDeleteByUID(t *testing.T) {
	s := New(clocktesting.NewFakePassiveClock(time.Now()), 0)
	c := cache{"p": {Exists: true, UID: "old"}}
	s.ExpectDelete("o", "p", "old")
	if ok, _ := s.Satisfied("o", c.lookup); ok {
		t.Fatal("deleted pod still in cache must be pending")
	}
	c["p"] = Observed{Exists: true, UID: "new"} // recreated with the same name
	if ok, _ := s.Satisfied("o", c.lookup); !ok {
		t.Fatal("a new pod under the same name means the old one is gone")
	}
	s.ExpectDelete("o", "q", "u")
	if ok, _ := s.Satisfied("o", cache{"q": {Exists: true, UID: "u", Terminating: true}}.lookup); !ok {
		t.Fatal("a terminating pod satisfies its delete")
	}
}

func TestUpdateComparesResourceVersion(t *testing.T) {
	s := New(clocktesting.NewFakePassiveClock(time.Now()), 0)
	s.ExpectUpdate("o", "p", "100")
	if ok, _ := s.Satisfied("o", cache{"p": {Exists: true, ResourceVersion: "99"}}.lookup); ok {
		t.Fatal("older version must be pending")
	}
	if ok, _ := s.Satisfied("o", cache{"p": {Exists: true, ResourceVersion: "101"}}.lookup); !ok {
		t.Fatal("newer version must satisfy")
	}
}

func TestTimeoutAndForget(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	s := New(clk, time.Minute)
	s.ExpectCreate("o", "a")
	s.ExpectCreate("o", "b")
	s.Forget("o", "b")
	if _, pending := s.Satisfied("o", cache{}.lookup); len(pending) != 1 || pending[0] != "a" {
		t.Fatalf("want only a pending, got %v", pending)
	}
	clk.SetTime(clk.Now().Add(2 * time.Minute))
	if ok, _ := s.Satisfied("o", cache{}.lookup); !ok {
		t.Fatal("expired expectation must be dropped")
	}
}

// A pod created and then written (its readiness gate opened) must still be
// waited for: the cache may show neither yet, and an update expectation
// alone would take its absence for a deletion.
func TestWriteAfterCreateStillWaitsForTheObject(t *testing.T) {
	s := New(clocktesting.NewFakePassiveClock(time.Now()), 0)
	s.ExpectCreate("o", "p")
	s.ExpectUpdate("o", "p", "42")
	if ok, _ := s.Satisfied("o", cache{}.lookup); ok {
		t.Fatal("a created pod missing from the cache must be pending")
	}
	if ok, _ := s.Satisfied("o", cache{"p": {Exists: true, ResourceVersion: "41"}}.lookup); ok {
		t.Fatal("the pod at the version before the write must be pending")
	}
	if ok, _ := s.Satisfied("o", cache{"p": {Exists: true, ResourceVersion: "42"}}.lookup); !ok {
		t.Fatal("the pod at the written version satisfies")
	}
}
