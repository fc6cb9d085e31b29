# Interlock's example service (examples/swarm) as an image: a static binary
# on an empty base. Build it with
#
#   docker build -t interlock-swarm .
#
# Where no base image can be pulled, deploy/build-image.sh builds the same
# binary on the host and packages it with deploy/Dockerfile.scratch.
# docs/deploy.md describes the variables, ports and volume.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/interlock-swarm ./examples/swarm

FROM scratch
COPY --from=build /out/interlock-swarm /interlock-swarm
ENV INTERLOCK_DATA_DIR=/data \
    INTERLOCK_STATUS_ADDR=:8080
VOLUME /data
# 7946 gossip (TCP and UDP), 7947 Raft and RPC, 8080 GET /status.
EXPOSE 7946/tcp 7946/udp 7947/tcp 8080/tcp
ENTRYPOINT ["/interlock-swarm"]
