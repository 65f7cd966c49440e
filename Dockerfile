# Builds the seadragon binary; one image serves every role (serve, gateway, worker).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin seadragon

FROM debian:bookworm-slim
# curl is for the compose health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/seadragon /usr/local/bin/seadragon
ENV SEADRAGON_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["seadragon"]
CMD ["serve"]
