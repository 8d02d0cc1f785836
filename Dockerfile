# Priora: a payer-side Da Vinci PAS / CRD server.
#   docker build --build-arg PRIORA_VERSION=v1.0.0 -t priora .
FROM golang:1.26-bookworm AS build
ARG PRIORA_VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${PRIORA_VERSION}" -o /out/priora ./cmd/priora

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/priora /priora
ENV PRIORA_ADDR=0.0.0.0:8080 \
    PRIORA_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/priora"]
CMD ["serve"]
