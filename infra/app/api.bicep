// The Function App on a Flex Consumption plan: Python 3.11, user-assigned identity for host
// storage, deployment package, data, Key Vault references and telemetry; HTTPS only, TLS 1.2+,
// FTP(S) and basic publishing credentials off. The app settings carry no secret values.
// (AVM: avm/res/web/serverfarm with FC1, avm/res/web/site with functionAppConfig; the quickstart's
// app/api.bicep sets the same AzureWebJobsStorage__* and APPLICATIONINSIGHTS_* settings.)
param name string
param planName string
param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of that identity (AzureWebJobsStorage__clientId, AZURE_CLIENT_ID).')
param identityClientId string

param hostStorageAccountName string
param deploymentContainerName string

@description('CBTRADE_AZURE_ACCOUNT_URL: https://<account>.blob.core.windows.net of the data account.')
param dataAccountUrl string

@description('CBTRADE_AZURE_CONTAINER.')
param dataContainerName string = 'cbtrade'

param applicationInsightsName string

@description('Log Analytics workspace for FunctionAppLogs; empty for none.')
param logAnalyticsWorkspaceId string = ''

@description('Version-less Key Vault secret URIs, resolved by the platform as Key Vault references.')
param apiKeysSecretUri string
param continuationTokenSecretUri string
param jwtHs256SecretUri string = ''

@description('CBTRADE_WATCHLIST.')
param watchlist string = ''

@description('CBTRADE_TOPUP_SCHEDULE.')
param topupSchedule string = '0 */5 * * * *'

@description('CBTRADE_TOPUP_QUEUE: the timer\'s top-up queue in the host storage account (AzureWebJobsStorage).')
param topupQueueName string = 'cbtrade-topup'

@description('CBTRADE_WORK_QUEUE: the backfill jobs\' work queue in the host storage account (AzureWebJobsStorage).')
param workQueueName string = 'cbtrade-work'

@description('CBTRADE_EXCHANGE_RATE_LIMITS: JSON object of exchange id to cost units per second.')
param exchangeRateLimits string = '{}'

@description('Zone-redundant Flex Consumption plan (only in regions that offer it).')
param zoneRedundant bool = false

param runtimeName string = 'python'
param runtimeVersion string = '3.11'
// Upper bound of the scale-out. Each queue trigger takes at most batchSize + newBatchThreshold
// (host.json: 16 + 8 = 24) messages per instance, so in-flight items of one queue stay below
// maximumInstanceCount x 24; the exchange rate is held by the shared budget, whatever the count.
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048

@description('azd finds the app to deploy by this tag (azure.yaml service "api").')
param serviceName string = 'api'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; set zoneRedundant where the chosen region offers it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: A public HTTPS API by design (model services call it); every route but /api/health needs a bearer token.
  // checkov:skip=CKV_AZURE_17: Clients authenticate with bearer API keys or JWTs, not client certificates.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales on demand; always-ready instances would bill around the clock for a data API that tolerates a cold start.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      appSettings: [
        // Identity-based host storage: no connection string, no account key.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: hostStorage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        // Telemetry over Microsoft Entra auth: Application Insights has local auth disabled.
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // DefaultAzureCredential in the app picks the user-assigned identity by this.
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        // The data service's own settings (DESIGN.md, settings table).
        {
          name: 'CBTRADE_STORAGE_BACKEND'
          value: 'azure'
        }
        {
          name: 'CBTRADE_AZURE_ACCOUNT_URL'
          value: dataAccountUrl
        }
        {
          name: 'CBTRADE_AZURE_CONTAINER'
          value: dataContainerName
        }
        {
          name: 'CBTRADE_WATCHLIST'
          value: watchlist
        }
        {
          name: 'CBTRADE_TOPUP_SCHEDULE'
          value: topupSchedule
        }
        // Two queues in the host account: the timer's top-up items and the backfill jobs' items
        // (POST /api/v1/backfills), so a large backfill never delays the top-up; each has its own
        // trigger, scaled on its own queue. The triggers and the app's sender both use the
        // AzureWebJobsStorage__* identity settings above.
        {
          name: 'CBTRADE_TOPUP_QUEUE'
          value: topupQueueName
        }
        {
          name: 'CBTRADE_WORK_QUEUE'
          value: workQueueName
        }
        // Every instance draws from one budget per exchange (ETag-conditional blobs under
        // service/ in the data container), so scale-out does not multiply the exchange rate.
        {
          name: 'CBTRADE_RATE_BUDGET_SCOPE'
          value: 'shared'
        }
        {
          name: 'CBTRADE_EXCHANGE_RATE_LIMITS'
          value: exchangeRateLimits
        }
        {
          name: 'CBTRADE_AUTH_DISABLED'
          value: 'false'
        }
        // Secrets: Key Vault references only, resolved with keyVaultReferenceIdentity.
        {
          name: 'CBTRADE_API_KEYS'
          value: '@Microsoft.KeyVault(SecretUri=${apiKeysSecretUri})'
        }
        {
          name: 'CBTRADE_CONTINUATION_TOKEN_SECRET'
          value: '@Microsoft.KeyVault(SecretUri=${continuationTokenSecretUri})'
        }
        {
          // Empty (ignored by the app) when no JWT secret was given.
          name: 'CBTRADE_JWT_HS256_SECRET'
          value: empty(jwtHs256SecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${jwtHs256SecretUri})'
        }
      ]
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      healthCheckPath: '/api/health'
      alwaysOn: false
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
  }
}

// Deployments authenticate with Microsoft Entra (azd, OIDC in GitHub Actions): no basic auth.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource functionAppDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'func-to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
output defaultHostName string = functionApp.properties.defaultHostName
output id string = functionApp.id
