package actors

// The cluster's ACL users live in the system group (cluster.State), so
// that ACL SETUSER and DELUSER on any node hold on every node and survive
// restarts. A change is proposed as the whole new list of users, made
// from a version of it: the group refuses it if another change came first
// (the client port then makes it again on the new users). Every node
// applies the entry, hands the users to its client port and keeps them in
// <data>/system/acl.json, which its port starts with after a restart,
// before the group has caught up.
//
// Until the cluster's users name the default user, each node's default
// user is its own: --requirepass's password, or none.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
)

// aclDefault is the node's own default user.
func (rt *Runtime) aclDefault() *kv.ACLUser { return kv.DefaultACLUser(rt.RequirePass) }

// aclUsers returns the users the node has: at first the ones it kept on
// disk for its cluster, or its default user alone.
func (rt *Runtime) aclUsers() *kv.ACLUsers {
	rt.aclMu.Lock()
	defer rt.aclMu.Unlock()
	return rt.aclUsersLocked()
}

func (rt *Runtime) aclUsersLocked() *kv.ACLUsers {
	if rt.aclCur != nil {
		return rt.aclCur
	}
	rt.aclCur = kv.NewACLUsers(rt.aclDefault())
	l := rt.Layout()
	kept, ok, err := l.ReadACL()
	if err != nil {
		rt.logger().Error("ACL users kept on disk: not read; the port starts with the default user until the system group catches up", "err", err)
		return rt.aclCur
	}
	if id := rt.recordedClusterID(); !ok || id == "" || id != kept.ClusterID {
		return rt.aclCur
	}
	us, err := kv.ParseACLUsers(kept.Version, kept.Users, rt.aclDefault())
	if err != nil {
		rt.logger().Error("ACL users kept on disk: not understood", "file", l.ACLFile(), "err", err)
		return rt.aclCur
	}
	rt.aclCur = us
	return us
}

// aclApplied is the system group's OnACL: the cluster's users changed (an
// entry, or a snapshot restored). An older version than the node has (a
// replay after a restart) changes nothing.
func (rt *Runtime) aclApplied(version uint64, users []string) {
	rt.aclMu.Lock()
	if cur := rt.aclUsersLocked(); version < cur.Version {
		rt.aclMu.Unlock()
		return
	}
	us, err := kv.ParseACLUsers(version, users, rt.aclDefault())
	if err != nil {
		rt.aclMu.Unlock()
		// Every node made the same list from the same rules: this
		// cannot happen short of a bug; the node keeps its users.
		rt.logger().Error("ACL users from the system group not understood: kept the previous ones", "version", version, "err", err)
		return
	}
	rt.aclCur = us
	rt.aclMu.Unlock()
	if id := rt.recordedClusterID(); id != "" {
		if err := rt.Layout().WriteACL(storage.ACLUsers{ClusterID: id, Version: version, Users: users}); err != nil {
			rt.logger().Error("ACL users: not kept on disk (a restart starts with older ones until the system group catches up)", "err", err)
		}
	}
	if port := rt.port.Load(); port != nil {
		port.SetACL(us)
	}
}

// proposeACL is the client port's ACLUpdate: users replace version from
// in the system group, through its leader wherever it is. Refused for
// another change that came first, it returns server.ErrACLChanged and the
// users' version now.
func (rt *Runtime) proposeACL(ctx context.Context, from uint64, users []string) (uint64, error) {
	cmd := &messages.SystemCommand{Cmd: &messages.SystemCommand_AclUpdate{AclUpdate: &messages.AclUpdate{FromVersion: from, Users: users}}}
	to := transport.Peer{} // this node's system actor first
	for try := 0; try < 3; try++ {
		res, err := rt.ask(ctx, to, SystemPath, cmd)
		if err != nil {
			return 0, err
		}
		r, ok := res.(*messages.ManagerReply)
		if !ok {
			return 0, fmt.Errorf("the system group answered %T", res)
		}
		switch {
		case r.Error == "":
			return r.Op, nil
		case strings.Contains(r.Error, cluster.ErrACLChanged.Error()):
			return r.Op, server.ErrACLChanged // r.Op: the current version
		case r.Error != ErrNotLeader:
			return 0, errors.New(r.Error)
		}
		if to, err = rt.systemLeader(); err != nil {
			return 0, err
		}
	}
	return 0, errors.New("the system group's leader kept moving")
}

// systemLeader is the system group's leader as this node knows it.
func (rt *Runtime) systemLeader() (transport.Peer, error) {
	r, st, err := rt.System()
	if err != nil {
		return transport.Peer{}, err
	}
	addr, id := r.LeaderWithID()
	if id == "" {
		return transport.Peer{}, errors.New("the system group has no leader now: try again")
	}
	peer := transport.Peer{Name: string(id), Addr: string(addr)}
	if m := st.Member(string(id)); m != nil && m.ClusterAddr != "" {
		peer = memberPeer(m)
	}
	return peer, nil
}
