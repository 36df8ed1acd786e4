# syntax=docker/dockerfile:1
#
# drover-manager image: a static binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/drover-dev/drover-manager:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 ...   (cross-compiles; no emulation)

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src

# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/drover-dev/drover/internal/version.version=${VERSION}" \
      -o /out/drover-manager ./cmd/drover-manager

# static: no libc, no shell, no package manager; the nonroot tag runs as
# uid/gid 65532, matching the chart's securityContext.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="drover-manager" \
      org.opencontainers.image.description="Drover: advanced workloads and progressive delivery for Kubernetes" \
      org.opencontainers.image.source="https://github.com/drover-dev/drover" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/drover-manager /drover-manager
USER 65532:65532
ENTRYPOINT ["/drover-manager"]
