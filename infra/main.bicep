// Production deployment of the orchestrator host: one resource group holding
//   - a storage account for the Azure Storage backend (queues, tables, blobs), shared-key access disabled,
//   - a user-assigned managed identity with Storage Blob/Queue/Table Data Contributor on it,
//   - a Key Vault (RBAC) holding the model API key, the webhook secrets and the management key,
//     readable by the identity (Key Vault Secrets User) and referenced by the app as secrets,
//   - Log Analytics for the Container Apps environment's logs (the host writes JSON lines to stdout),
//   - the host as a Container App running `serve` with that identity.
// infra/README.md says how to deploy and which setting each app setting feeds.

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Short name prefix for every resource (letters and digits, 3-11 characters).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'orch'

@description('The host\'s container image, e.g. myregistry.azurecr.io/orchestrator-host:1.0.0.')
param containerImage string

@description('Registry server of the image when it is private (pulled with the managed identity, which then needs AcrPull on it); empty for a public image.')
param containerRegistryServer string = ''

@description('Task hub name (host.json extensions.durableTask.hubName).')
param hubName string = 'OrchestratorHub'

@description('OpenAI-compatible endpoint of the model (empty for api.openai.com).')
param modelEndpoint string = ''

@description('Model name or Azure OpenAI deployment name.')
param modelName string = 'gpt-4o'

@description('The model API key; stored in Key Vault, never in app settings.')
@secure()
param modelApiKey string

@description('Standard Webhooks secret for confirmation webhooks (whsec_...; space-separated values during a rotation); stored in Key Vault.')
@secure()
param webhookSecret string

@description('Key required by the management endpoints; stored in Key Vault.')
@secure()
param managementKey string

@description('Path of the host\'s liveness endpoint.')
param healthPath string = '/healthz'

@description('Path of the host\'s readiness endpoint.')
param readyPath string = '/readyz'

@description('Replicas always running: at least 1, since a worker must run for orchestrations to make progress.')
@minValue(1)
param minReplicas int = 1

@description('Most replicas; every replica is a worker on the same task hub (partitions move between them by lease).')
@minValue(1)
param maxReplicas int = 4

@description('Days Log Analytics keeps logs.')
@minValue(30)
param logRetentionDays int = 30

var suffix = uniqueString(resourceGroup().id, namePrefix)
var storageName = toLower(take('${namePrefix}st${suffix}', 24))
var vaultName = take('${namePrefix}-kv-${suffix}', 24)
// Container Apps names must be lower case.
var appName = toLower('${namePrefix}-host')
var environmentName = toLower('${namePrefix}-env-${suffix}')

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id-${suffix}'
  location: location
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    // Identity only: no account keys, no SAS signed with them.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    accessTier: 'Hot'
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [roles.storageBlobDataContributor, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
  name: guid(storage.id, identity.id, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
  }
}

resource modelApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'model-api-key'
  properties: {
    value: modelApiKey
  }
}

resource webhookSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'webhook-secret'
  properties: {
    value: webhookSecret
  }
}

resource managementKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'management-key'
  properties: {
    value: managementKey
  }
}

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: appName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8080
        transport: 'auto'
        allowInsecure: false
      }
      registries: empty(containerRegistryServer) ? [] : [
        {
          server: containerRegistryServer
          identity: identity.id
        }
      ]
      // Key Vault references: the app reads the secrets with the identity; their values never appear in app settings.
      secrets: [
        {
          name: 'model-api-key'
          keyVaultUrl: modelApiKeySecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'webhook-secret'
          keyVaultUrl: webhookSecretSecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'management-key'
          keyVaultUrl: managementKeySecret.properties.secretUri
          identity: identity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'host'
          image: containerImage
          args: [
            'serve'
            '--urls'
            'http://+:8080'
          ]
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          env: [
            // Identity-based storage connection, the Azure Functions way (see infra/README.md).
            { name: 'AzureWebJobsStorage__accountName', value: storage.name }
            { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
            { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
            { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
            { name: 'extensions__durableTask__hubName', value: hubName }
            { name: 'Model__Endpoint', value: modelEndpoint }
            { name: 'Model__Name', value: modelName }
            { name: 'Model__ApiKey', secretRef: 'model-api-key' }
            { name: 'Webhooks__ConfirmationSecret', secretRef: 'webhook-secret' }
            { name: 'Management__Key', secretRef: 'management-key' }
          ]
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: healthPath
                port: 8080
              }
              periodSeconds: 30
            }
            {
              type: 'Readiness'
              httpGet: {
                path: readyPath
                port: 8080
              }
              periodSeconds: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
      }
    }
  }
  dependsOn: [
    storageRoles
    vaultRole
    blobs
    queues
    tables
  ]
}

@description('The host\'s public URL.')
output hostUrl string = 'https://${app.properties.configuration.ingress.fqdn}'

@description('The storage account the task hub lives in.')
output storageAccountName string = storage.name

@description('The Key Vault holding the secrets.')
output keyVaultName string = vault.name

@description('Client id of the app\'s managed identity.')
output identityClientId string = identity.properties.clientId
