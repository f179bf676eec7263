package raft

import "testing"

// The fork's GetConfiguration tells the index of the configuration's log
// entry (upstream's future answers 0), so a caller can make a membership
// change conditional on the configuration it read (prevIndex).
func TestGetConfigurationIndex(t *testing.T) {
	c := MakeCluster(1, t, nil)
	defer c.Close()
	leader := c.Leader()
	f := leader.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if f.Index() == 0 {
		t.Fatalf("bootstrapped configuration at index 0")
	}
	add := leader.AddNonvoter("n9", "127.0.0.1:1", f.Index(), 0)
	if err := add.Error(); err != nil {
		t.Fatalf("change on the configuration read: %v", err)
	}
	after := leader.GetConfiguration()
	if after.Index() != add.Index() || len(after.Configuration().Servers) != 2 {
		t.Fatalf("configuration %+v at index %d, want the change's %d", after.Configuration(), after.Index(), add.Index())
	}
	if err := leader.RemoveServer("n9", f.Index(), 0).Error(); err == nil {
		t.Fatalf("a change on the configuration before the last one succeeded")
	}
}
