package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// etcdCluster is three etcd members on loopback with a static
// --initial-cluster, each with its own data dir and etcd's default fsync.
type etcdCluster struct {
	clients []string // host:port
	procs   []*proc
}

func startEtcd(work string, size int) (*etcdCluster, error) {
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, fmt.Errorf("etcd not found: apt-get install etcd-server etcd-client")
	}
	var c etcdCluster
	var peers, initial []string
	for i := 0; i < size; i++ {
		c.clients = append(c.clients, freePort())
		peers = append(peers, freePort())
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, peers[i]))
	}
	for i := 0; i < size; i++ {
		name := fmt.Sprintf("e%d", i+1)
		cmd := exec.Command("etcd", "--name", name, "--data-dir", filepath.Join(work, name),
			"--listen-client-urls", "http://"+c.clients[i], "--advertise-client-urls", "http://"+c.clients[i],
			"--listen-peer-urls", "http://"+peers[i], "--initial-advertise-peer-urls", "http://"+peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "clusterbench", "--logger", "zap", "--log-level", "warn")
		p, err := start(name, cmd, filepath.Join(work, name+".log"))
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	for i, p := range c.procs {
		addr := c.clients[i]
		if err := waitFor(60*time.Second, 100*time.Millisecond, p.name+" healthy", p, func() error {
			resp, err := hc.Get("http://" + addr + "/health")
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(b, []byte(`"health":"true"`)) {
				return fmt.Errorf("/health: %s", b)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func (c *etcdCluster) stop() {
	for _, p := range c.procs {
		p.stop()
	}
}

// leader asks `etcdctl endpoint status` which endpoint leads.
func (c *etcdCluster) leader() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var eps []string
	for _, a := range c.clients {
		eps = append(eps, "http://"+a)
	}
	cmd := exec.CommandContext(ctx, "etcdctl", "--endpoints", strings.Join(eps, ","), "endpoint", "status", "-w", "json")
	cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("etcdctl endpoint status: %v: %s", err, out)
	}
	var sts []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader uint64 `json:"leader"`
		}
	}
	if err := json.Unmarshal(out, &sts); err != nil {
		return "", fmt.Errorf("etcdctl endpoint status: %v: %s", err, out)
	}
	for _, s := range sts {
		if s.Status.Leader != 0 && s.Status.Header.MemberID == s.Status.Leader {
			return strings.TrimPrefix(s.Endpoint, "http://"), nil
		}
	}
	return "", fmt.Errorf("no leader in %s", out)
}

// etcdClient puts one key through the native gRPC API (HTTP/2 without
// TLS, one connection per client, the request encoded by hand:
// etcdserverpb.PutRequest{key=1, value=2}) or the JSON gateway
// (/v3/kv/put, one keep-alive HTTP/1.1 connection per client).
type etcdClient struct {
	api  string // grpc or gateway
	addr string
	hc   *http.Client
}

func newEtcdClient(api, addr string) *etcdClient {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	if api == "grpc" {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	return &etcdClient{api: api, addr: addr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *etcdClient) close() { c.hc.CloseIdleConnections() }

func (c *etcdClient) put(key, value []byte) error {
	var req *http.Request
	var err error
	if c.api == "grpc" {
		msg := protowire.AppendTag(nil, 1, protowire.BytesType)
		msg = protowire.AppendBytes(msg, key)
		msg = protowire.AppendTag(msg, 2, protowire.BytesType)
		msg = protowire.AppendBytes(msg, value)
		frame := make([]byte, 5, 5+len(msg))
		binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
		frame = append(frame, msg...)
		req, err = http.NewRequest("POST", "http://"+c.addr+"/etcdserverpb.KV/Put", bytes.NewReader(frame))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
	} else {
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(value))
		req, err = http.NewRequest("POST", "http://"+c.addr+"/v3/kv/put", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd put: %s: %s", resp.Status, b)
	}
	if c.api == "grpc" {
		st := resp.Trailer.Get("Grpc-Status")
		if st == "" {
			st = resp.Header.Get("Grpc-Status")
		}
		if st != "0" {
			return fmt.Errorf("etcd put: grpc-status %q: %s %s", st, resp.Trailer.Get("Grpc-Message"), resp.Header.Get("Grpc-Message"))
		}
		if len(b) < 5 {
			return fmt.Errorf("etcd put: short gRPC reply %x", b)
		}
	} else if !bytes.Contains(b, []byte(`"header"`)) {
		return fmt.Errorf("etcd put: reply %s", b)
	}
	return nil
}

// etcdLoad does n puts of size-byte values to random keys among 100000
// (like redis-benchmark -r 100000) from clients concurrent clients, each
// with its own connection, and reports the rate and latency percentiles.
// The first error stops it.
func etcdLoad(api, addr string, clients, n, size int) (result, error) {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	errs := make([]error, clients)
	var failed atomic.Bool
	var wg sync.WaitGroup
	value := bytes.Repeat([]byte("x"), size)
	cs := make([]*etcdClient, clients)
	for i := range cs {
		cs[i] = newEtcdClient(api, addr)
		defer cs[i].close()
		// Open the connection before the clock starts, as redis-benchmark does.
		if err := cs[i].put([]byte("clusterbench:warmup"), value); err != nil {
			return result{}, err
		}
	}
	t0 := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for next.Add(1) <= int64(n) && !failed.Load() {
				key := fmt.Appendf(nil, "key:%012d", rng.IntN(100000))
				s := time.Now()
				if err := cs[i].put(key, value); err != nil {
					errs[i] = err
					failed.Store(true)
					return
				}
				lat[i] = append(lat[i], time.Since(s))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			return result{}, err
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	ms := func(q float64) float64 {
		return float64(all[min(len(all)-1, int(q*float64(len(all))))]) / float64(time.Millisecond)
	}
	return result{rps: float64(len(all)) / wall.Seconds(), p50: ms(0.50), p99: ms(0.99), wall: wall, n: len(all)}, nil
}
