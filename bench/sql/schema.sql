-- The benchmark's policy: run once per template database (psql -v rows=N).
CREATE EXTENSION pg_retention;
SELECT retention.define_category('conversations', '1 year',
         description => 'Conversation history: 1 year from creation');
SELECT retention.define_category('audit_logs', '7 years', erasure_exempt => true,
         description => 'Audit trail kept 7 years');
SELECT retention.define_category('attachments', '30 days',
         description => 'Uploaded attachments: 30 days');
-- Tenant overrides of the default category ("unless a customer agreement says otherwise").
SELECT retention.set_tenant_policy('t01', 'conversations', '90 days');
SELECT retention.set_tenant_policy('t02', 'conversations', '2 years');
SELECT retention.set_tenant_policy('t03', 'conversations', '6 months');
