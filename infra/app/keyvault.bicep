// Key Vault holding the app's secrets; the app reads them through Key Vault references with its
// user-assigned identity, so no secret value is ever an app setting
// (AVM: avm/res/key-vault/vault with enableRbacAuthorization, secrets).
param name string
param location string = resourceGroup().location
param tags object = {}

@secure()
@description('CBTRADE_API_KEYS: comma-separated bearer keys.')
param apiKeys string

@secure()
@description('CBTRADE_CONTINUATION_TOKEN_SECRET.')
param continuationTokenSecret string

@secure()
@description('CBTRADE_JWT_HS256_SECRET; empty creates no secret.')
param jwtHs256Secret string = ''

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Log Analytics workspace for the vault audit log; empty for none.')
param logAnalyticsWorkspaceId string = ''

var apiKeysSecretName = 'cbtrade-api-keys'
var continuationTokenSecretName = 'cbtrade-continuation-token-secret'
var jwtHs256SecretName = 'cbtrade-jwt-hs256-secret'
// Outputs say whether the JWT secret exists without referencing the secure value itself.
var hasJwtSecret = !empty(jwtHs256Secret)

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption without VNet integration reaches the vault over its public endpoint (Key Vault references are not a trusted-service bypass); access is RBAC-only. Add VNet integration + a private endpoint to close it.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access stays on until the app is VNet-integrated.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: An expiry date would take the API down the day it passes; the secrets are rotated by hand (infra/README.md), and Key Vault references follow the latest version.
  parent: vault
  name: apiKeysSecretName
  properties: {
    value: apiKeys
    contentType: 'text/plain; comma-separated bearer API keys'
    attributes: {
      enabled: true
    }
  }
}

resource continuationTokenSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: Rotated by hand like the API keys; an expiry would invalidate every outstanding continuation token at a fixed date.
  parent: vault
  name: continuationTokenSecretName
  properties: {
    value: continuationTokenSecret
    contentType: 'text/plain; HMAC key of the continuation tokens'
    attributes: {
      enabled: true
    }
  }
}

resource jwtSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasJwtSecret) {
  // checkov:skip=CKV_AZURE_41: Rotated by hand with the token issuer; an expiry would reject every JWT at a fixed date.
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov reads the properties of a conditional (if) resource one level too high and misses it.
  parent: vault
  name: jwtHs256SecretName
  properties: {
    value: jwtHs256Secret
    contentType: 'text/plain; HS256 JWT signing secret'
    attributes: {
      enabled: true
    }
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'vault-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
// Version-less URIs: a Key Vault reference then follows the newest secret version (rotation).
output apiKeysSecretUri string = '${vault.properties.vaultUri}secrets/${apiKeysSecretName}'
output continuationTokenSecretUri string = '${vault.properties.vaultUri}secrets/${continuationTokenSecretName}'
output jwtHs256SecretUri string = hasJwtSecret ? '${vault.properties.vaultUri}secrets/${jwtHs256SecretName}' : ''
