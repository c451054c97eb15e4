#!/bin/sh
# Vault (or OpenBao: VAULT=bao) configuration for the worked example: the app "orders" in
# namespace "shop" gets a PostgreSQL credential and a KV v2 secret.
#
# Needs: VAULT_ADDR and a token allowed to configure Vault (VAULT_TOKEN), and
#   KUBERNETES_HOST      the API server address as Vault reaches it, e.g. https://10.0.0.1:443
#   POSTGRES_URL         host:port/database of the app's PostgreSQL, e.g. postgres.shop.svc:5432/orders
#   POSTGRES_ADMIN_USER  a PostgreSQL role that may create roles (Vault's own, not the app's)
#   POSTGRES_ADMIN_PASSWORD
#   KUBERNETES_CA_CERT   the API server's CA (a PEM file); required when Vault runs outside the
#                        cluster, otherwise Vault reads its own pod's ServiceAccount CA
# Optional: POSTGRES_SSLMODE (default require), PAYMENT_API_KEY (the example's KV value).
# Re-running it is safe: every write replaces the previous one.
# Secret values go to the CLI on its standard input (key=-), never in its arguments, which any
# user of the machine can read in the process list.
set -eu

VAULT="${VAULT:-vault}"

enable() { # enable <kind> <path> <type>: an auth method or secrets engine, unless it is there
    if ! "$VAULT" "$1" list -format=json | grep -q "\"$2/\""; then
        "$VAULT" "$1" enable -path="$2" "$3"
    fi
}

# 1. Kubernetes auth: Vault checks each pod's ServiceAccount token with the API server.
enable auth kubernetes kubernetes
if [ -n "${KUBERNETES_CA_CERT:-}" ]; then
    "$VAULT" write auth/kubernetes/config kubernetes_host="$KUBERNETES_HOST" \
        kubernetes_ca_cert=@"$KUBERNETES_CA_CERT"
else
    "$VAULT" write auth/kubernetes/config kubernetes_host="$KUBERNETES_HOST"
fi

# 2. The app's static settings, in KV version 2 at secret/.
enable secrets secret kv-v2
printf '%s' "${PAYMENT_API_KEY:-example-only-change-me}" |
    "$VAULT" kv put secret/orders/config payment_api_key=-

# 3. Dynamic PostgreSQL credentials: each pod gets its own role, valid for an hour, revoked
#    when the pod stops.
enable secrets database database
printf '%s' "$POSTGRES_ADMIN_PASSWORD" | "$VAULT" write database/config/orders \
    plugin_name=postgresql-database-plugin \
    allowed_roles=orders \
    connection_url="postgresql://{{username}}:{{password}}@${POSTGRES_URL}?sslmode=${POSTGRES_SSLMODE:-require}" \
    username="$POSTGRES_ADMIN_USER" \
    password=-
"$VAULT" write database/roles/orders \
    db_name=orders \
    creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{{name}}\";" \
    revocation_statements="REASSIGN OWNED BY \"{{name}}\" TO CURRENT_USER; DROP OWNED BY \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";" \
    default_ttl=1h \
    max_ttl=24h

# 4. The policy: read these two paths, nothing else.
"$VAULT" policy write orders - <<'POLICY'
path "database/creds/orders" {
  capabilities = ["read"]
}
path "secret/data/orders/config" {
  capabilities = ["read"]
}
POLICY

# 5. The role: only ServiceAccount "orders" of namespace "shop", only with a token made for
#    Vault (audience "vault", as the projected volume in app.yaml asks for).
"$VAULT" write auth/kubernetes/role/orders \
    bound_service_account_names=orders \
    bound_service_account_namespaces=shop \
    audience=vault \
    token_policies=orders \
    token_ttl=20m \
    token_max_ttl=1h

echo "Vault is ready for the example: kubectl apply -k manifests/overlays/example"
