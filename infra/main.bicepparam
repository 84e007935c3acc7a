using './main.bicep'

// Example parameters; secrets come from the environment of whoever deploys, never from this file.
param namePrefix = 'orch'
param containerImage = 'myregistry.azurecr.io/orchestrator-host:1.0.0'
param containerRegistryServer = 'myregistry.azurecr.io'
param hubName = 'OrchestratorHub'
param modelEndpoint = ''
param modelName = 'gpt-4o'
param modelApiKey = readEnvironmentVariable('MODEL_API_KEY', '')
param webhookSecret = readEnvironmentVariable('WEBHOOK_SECRET', '')
param managementKey = readEnvironmentVariable('MANAGEMENT_KEY', '')
param minReplicas = 1
param maxReplicas = 4
