# The node image: the static binary and nothing else. There is no registry
# to pull a Go image from, so the binary is built on the host first:
#
#   CGO_ENABLED=0 go build -trimpath -o build/node ./cmd/node
#   docker build -t coppice-node .
#
# Data lives under /data (a volume); the ports are the client (RESP),
# cluster (Raft), gossip (serf, TCP and UDP) and HTTP ports.
FROM scratch
COPY build/node /node
VOLUME /data
EXPOSE 7379 7380 7946 7946/udp 7381
ENV COPPICE_DATA_DIR=/data \
    COPPICE_CLIENT_ADDR=0.0.0.0:7379 \
    COPPICE_CLUSTER_ADDR=0.0.0.0:7380 \
    COPPICE_GOSSIP_ADDR=0.0.0.0:7946 \
    COPPICE_HTTP_ADDR=0.0.0.0:7381
ENTRYPOINT ["/node"]
