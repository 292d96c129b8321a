//! Quotas: GET /v2/admin/resourceQuota/dockerRegistrySecrets (viewer), GET/PUT /v2/operator/tenants/{tenant}/quota (operator).

spin_bridge::endpoint_component!(METADATA, domain::endpoints::quota);
