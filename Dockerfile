# syntax=docker/dockerfile:1
# The IsoCrates binary in a small image that runs as a user without privileges.
#
#   docker build -t isocrates .
#   docker run --rm -p 127.0.0.1:8000:8000 -e AUTH_ENABLED=false isocrates

# Build: the toolchain the project is tested with, and a C compiler for tree-sitter.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the build between image builds; the binary is copied
# out of the cached target folder, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    SQLX_OFFLINE=true cargo build --release --locked --bin isocrates \
    && install -m 0755 target/release/isocrates /usr/local/bin/isocrates

# Run: certificates for https to git hosts and model providers, nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/isocrates --create-home isocrates \
    && mkdir -p /var/lib/isocrates/repos \
    && chown -R 10001:10001 /var/lib/isocrates
COPY --from=build /usr/local/bin/isocrates /usr/local/bin/isocrates
USER 10001:10001
WORKDIR /var/lib/isocrates
# Clones and (without DATABASE_URL or DATABASE_URL_FILE) the SQLite file `isocrates.db`
# live in the working folder, one volume that no web server serves. The folders exist in
# the image, owned by the user, so that a new named volume mounted on them is too.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    REPOS_DIR=/var/lib/isocrates/repos
VOLUME ["/var/lib/isocrates"]
EXPOSE 8000
ENTRYPOINT ["isocrates"]
CMD ["serve"]
