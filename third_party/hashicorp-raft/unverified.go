// coppice: a server that starts on empty stores grants no vote until it
// has caught up with a leader.

package raft

import "fmt"

// keyUnverified marks, in the stable store, a server that started on empty
// stores and has not caught up with a leader since (1; 0 or absent once it
// has), so the mark outlives a restart half-way.
//
// A voter whose stores were lost (a replaced disk, a wiped data dir) and
// that comes back under its ID is still counted a voter by the others, but
// has forgotten the entries it acknowledged and the votes it cast. Raft's
// election safety and leader completeness both rest on those: granting its
// vote to a candidate that lacks an entry it had acknowledged can elect a
// leader without a committed entry, and a second vote in a term it had
// voted in can elect two leaders. So such a server grants no vote (nor
// pre-vote), and does not stand (it would vote for itself), until it holds
// everything a leader tells it is committed (an AppendEntries after which
// its last index reaches the leader's commit index), or it bootstraps the
// cluster. A new server that joins first as a
// non-voter has caught up before it is promoted, so this changes nothing
// for it; a new server added straight as a voter votes once it has caught
// up. What it costs: a group whose other voters cannot elect a leader
// without this server's vote stays without one until they can; and a
// cluster whose servers all start empty, bootstrapped with several voters
// at once, elects no leader. Hence an option, Config.LostStoreGuard.
var keyUnverified = []byte("CoppiceUnverified")

// initUnverified marks a server that starts on empty stores, and restores
// the mark of one that has not caught up since (Config.LostStoreGuard).
func (r *Raft) initUnverified(existing bool) error {
	if !r.config().LostStoreGuard {
		return nil
	}
	if !existing {
		if err := MarkUnverified(r.stable); err != nil {
			return err
		}
		r.unverified.Store(true)
		return nil
	}
	v, err := r.stable.GetUint64(keyUnverified)
	if err != nil && err.Error() != "not found" {
		return fmt.Errorf("failed to read the unverified mark: %v", err)
	}
	r.unverified.Store(v == 1)
	if v == 1 {
		r.logger.Warn("this server has not caught up with a leader since it started on empty stores: it grants no vote until it has")
	}
	return nil
}

// MarkUnverified marks a server whose stores are about to be emptied while
// its stable values (term and vote) stay, so that once started on them it
// grants no vote until it has caught up with a leader, as one that starts
// on empty stores (Config.LostStoreGuard). For a server that drops its log
// and snapshots by itself (coppice rebuilds a shard whose state machine
// store is damaged): HasExistingState still finds the term, so without the
// mark it would vote at once with an empty log. Call it before the log is
// emptied, with the server shut down.
func MarkUnverified(stable StableStore) error {
	if err := stable.SetUint64(keyUnverified, 1); err != nil {
		return fmt.Errorf("failed to mark the server unverified: %v", err)
	}
	return nil
}

// verified clears the mark: the server votes again.
func (r *Raft) verified(why string) {
	if !r.unverified.Load() {
		return
	}
	if err := r.stable.SetUint64(keyUnverified, 0); err != nil {
		r.logger.Error("failed to clear the unverified mark", "error", err)
		return
	}
	r.unverified.Store(false)
	r.logger.Info("this server grants votes again", "why", why)
}

// VotesWithheld tells whether the server grants no vote: it started on
// empty stores and has not caught up with a leader (LostStoreGuard).
func (r *Raft) VotesWithheld() bool { return r.unverified.Load() }

// TrustStores ends LostStoreGuard's wait on an operator's word: the server
// grants votes and stands again although it has not caught up with a
// leader since it started on empty stores. It tells whether the server
// was withholding its votes.
//
// For when the wait cannot end: the other voters lost their stores too
// (two disks of a three-voter group), so no leader can be elected to
// catch it up. It is unsafe: an entry that was committed with the lost
// stores' acknowledgements and that no remaining voter holds is gone, and
// a vote this server cast before it lost its stores may be cast again in
// the same term. The operator decides that availability is worth it.
func (r *Raft) TrustStores() bool {
	if !r.unverified.Load() {
		return false
	}
	r.verified("an operator trusted its stores")
	return !r.unverified.Load()
}

// vouchesCommit tells whether a, once it has been taken (its previous
// entry matched, its entries were stored), shows that this server's log
// holds every entry the leader has committed: the log matches the
// leader's up to a's last entry (or its previous one, when it carries
// none), and that reaches the commit index a carries. A heartbeat carries
// no commit index (upstream's sends only the term): it shows nothing,
// whatever the log holds. Nor does a commit index alone against this
// server's last index: entries it took from an earlier leader may differ
// from the committed ones at the same indexes.
func vouchesCommit(a *AppendEntriesRequest) bool {
	last := a.PrevLogEntry
	if n := len(a.Entries); n > 0 {
		last = a.Entries[n-1].Index
	}
	return a.LeaderCommitIndex > 0 && last >= a.LeaderCommitIndex
}

// refuseUnverified tells whether a vote (or pre-vote) request is refused
// because the server is unverified.
func (r *Raft) refuseUnverified(kind string, candidate ServerAddress) bool {
	if !r.unverified.Load() {
		return false
	}
	r.logger.Warn("rejecting "+kind+" request since this server started on empty stores and has not caught up with a leader yet",
		"candidate", candidate)
	return true
}
