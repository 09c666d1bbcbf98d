# Build stage: the release binary. The SQL migrations are embedded at compile time
# (sqlx::migrate!), so migrations/ is needed here and not at run time.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Not built here, but Cargo.toml names the bench target and the workspace's benchmark tools
# (benches/tools), and cargo reads no manifest whose targets or members are missing.
COPY benches ./benches
# The command line, rbacctl, is built too: it is useful inside the container.
COPY client ./client
RUN cargo build --release --locked -p rbac-server -p rbac-client

# Runtime stage: the binaries alone, the server run by an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rbac \
    && useradd --system --uid 10001 --gid rbac --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rbac
COPY --from=build /src/target/release/rbac-server /usr/local/bin/rbac-server
COPY --from=build /src/target/release/rbacctl /usr/local/bin/rbacctl
# Without DATABASE_URL the embedded SQLite database lives here; mount a volume to keep it.
RUN mkdir -p /var/lib/rbac-server && chown 10001:10001 /var/lib/rbac-server
ENV DATA_DIR=/var/lib/rbac-server
VOLUME /var/lib/rbac-server
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/rbac-server"]
