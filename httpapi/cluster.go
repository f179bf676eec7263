package httpapi

// The cluster endpoints: the manager's operations as JSON, and each
// shard's data checksum on this node.
//
//	GET    /v1/nodes               the coordinator's view: nodes, ops, syncs
//	POST   /v1/nodes               {"name": "n4", "role": "voter"} add a node, or change a member's role
//	DELETE /v1/nodes/{name}        remove a node (leadership moves first)
//	POST   /v1/leave               this node leaves the cluster
//	GET    /v1/checksums           every shard's applied index and checksum here
//	POST   /v1/trust-stores        unsafe: this node's groups that withhold their votes
//	                               (started on empty stores) grant them again
//	POST   /v1/scrub               read every table of this node's shard stores and Raft log store back now
//
// An operation answers 202 with {"op": id, "detail": ...} when accepted,
// 200 when there was nothing to do, and 400 or 409 with {"error": ...}
// when refused: nothing changed then.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func (s *Server) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		s.managerOp(w, r, &messages.NodeStatusRequest{})
	})
	mux.HandleFunc("POST /v1/nodes", s.addNode)
	mux.HandleFunc("DELETE /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.managerOp(w, r, &messages.RemoveNode{Name: r.PathValue("name")})
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		s.managerOp(w, r, &messages.LeaveCluster{})
	})
	mux.HandleFunc("GET /v1/checksums", s.checksums)
	mux.HandleFunc("POST /v1/trust-stores", s.trustStores)
	mux.HandleFunc("POST /v1/scrub", s.scrub)
}

// scrub asks for a scrub of the node's stores now: 202 when this
// ask starts one (after the pass under way, if any), 200 when one is
// asked for already; its end is in the log and /metrics
// (coppice_shard_scrub_last_pass_seconds).
func (s *Server) scrub(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Scrub == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNotStarted.Error()})
		return
	}
	started, running := s.cfg.Scrub()
	switch {
	case started && running:
		writeJSON(w, http.StatusAccepted, map[string]string{"scrub": "asked for: it starts when the pass under way ends"})
	case started:
		writeJSON(w, http.StatusAccepted, map[string]string{"scrub": "started"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"scrub": "asked for already: nothing more to do"})
	}
}

// trustStores ends the wait of this node's Raft groups that withhold their
// votes until a leader catches them up (actors.TrustStores): for a node
// whose data dir was lost when the others that could catch it up lost
// theirs too. Unsafe; the answer names the groups it changed.
func (s *Server) trustStores(w http.ResponseWriter, r *http.Request) {
	sys := s.system()
	if sys == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNotStarted.Error()})
		return
	}
	groups, err := actors.TrustStores(r.Context(), sys, s.cfg.Info.Shards)
	body := map[string]any{"trusted": groups}
	if err != nil {
		body["error"] = err.Error()
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) addNode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"name\": ..., \"role\": voter|replica|readonly}: " + err.Error()})
		return
	}
	role, ok := map[string]messages.Role{"": messages.Role_ROLE_UNSPECIFIED, "voter": messages.Role_ROLE_VOTER,
		"replica": messages.Role_ROLE_REPLICA, "readonly": messages.Role_ROLE_READONLY}[req.Role]
	if !ok || req.Name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("name %q, role %q: want a name and role voter, replica or readonly", req.Name, req.Role)})
		return
	}
	s.managerOp(w, r, &messages.AddNode{Name: req.Name, Role: role})
}

// managerOp sends msg to this node's manager and writes its answer. The
// wait ends with the request (a client gone): an operation the manager
// took goes on without it.
func (s *Server) managerOp(w http.ResponseWriter, r *http.Request, msg proto.Message) {
	sys := s.system()
	if sys == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNotStarted.Error()})
		return
	}
	res, err := actors.Ask(r.Context(), sys, actor.NewPID(sys.Address(), actors.ManagerPath), msg, s.cfg.Timeout+30*time.Second)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "manager: " + err.Error()})
		return
	}
	code := http.StatusOK
	switch a := res.(type) {
	case *messages.ManagerReply:
		switch {
		case a.Error != "" && strings.Contains(a.Error, "no coordinator"):
			code = http.StatusServiceUnavailable
		case a.Error != "" && strings.Contains(a.Error, "no such node"):
			code = http.StatusNotFound
		case a.Error != "":
			code = http.StatusConflict
		case a.Op != 0:
			code = http.StatusAccepted
		}
	case *messages.NodeStatusReply:
		if a.Error != "" {
			code = http.StatusServiceUnavailable
		}
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(res.(proto.Message))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}

type shardChecksum struct {
	Shard        uint32 `json:"shard"`
	AppliedIndex uint64 `json:"applied_index"`
	CRC32C       string `json:"crc32c"`
	Keys         uint64 `json:"keys"`
	Error        string `json:"error,omitempty"`
}

func (s *Server) checksums(w http.ResponseWriter, r *http.Request) {
	sys := s.system()
	if sys == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNotStarted.Error()})
		return
	}
	out := make([]shardChecksum, s.cfg.Info.Shards)
	futures := make([]*actor.Future, len(out))
	for i := range out {
		futures[i] = sys.Root.RequestFuture(actor.NewPID(sys.Address(), actors.RaftPath(i)), &messages.ShardChecksum{}, s.cfg.Timeout+30*time.Second)
	}
	code := http.StatusOK
	for i, f := range futures {
		out[i].Shard = uint32(i)
		res, err := f.Result()
		c, ok := res.(*messages.ShardChecksumReply)
		switch {
		case err != nil:
			out[i].Error = err.Error()
		case !ok:
			out[i].Error = fmt.Sprintf("answered %T", res)
		default:
			out[i].AppliedIndex, out[i].CRC32C, out[i].Keys, out[i].Error = c.AppliedIndex, fmt.Sprintf("%08x", c.Crc32C), c.Keys, c.Error
		}
		if out[i].Error != "" {
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, out)
}
