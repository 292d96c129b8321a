//! POST /v2/operator/tenants/{tenant}/reencrypt: re-seal a tenant's secrets under the newest key (operator).

spin_bridge::endpoint_component!(CREDENTIALS, domain::endpoints::reencrypt);
