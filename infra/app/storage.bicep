// A storage account reachable only with Microsoft Entra identities (shared key off), TLS 1.2,
// HTTPS only, no public blob access, soft delete on, its blob containers and its queues
// (AVM: avm/res/storage/storage-account with allowSharedKeyAccess: false, queueServices.queues).
param name string
param location string = resourceGroup().location
param tags object = {}

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Private blob containers to create.')
param containerNames array = []

@description('Queues to create (the host account: the top-up and work queues and their poison queues), so nothing is created at run time.')
param queueNames array = []

// A caller passes false when its queue names collide; allowedValues then fails this deployment
// with the parameter's name before any queue exists (Bicep's fail() is not parsed by checkov).
@allowed([
  true
])
@description('Whether queueNames are all different; false stops the deployment.')
param queueNamesDistinct bool = true

@description('Log Analytics workspace for the blob (and, with queues, queue) service logs; empty for none.')
param logAnalyticsWorkspaceId string = ''

@minValue(1)
@maxValue(365)
param softDeleteRetentionDays int = 7

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over the public endpoint (it is no trusted service); access needs an Entra identity since shared key is off. Add VNet integration + private endpoints to close it.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35; anonymous blob access is off (allowBlobPublicAccess: false).
  // checkov:skip=CKV_AZURE_206: The caller picks replication per account: GRS by default for the data account, LRS for the host account, whose content is rebuilt by a deployment.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'blob-to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

// The queue service exists on every StorageV2 account; declaring it (no CORS, as by default)
// gives the queues a parent. Queue data is reached with Entra identities only (shared key off).
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {}
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

// Who sent, read and deleted queue messages (StorageQueueLogs), as for blobs; only on an account
// that holds queues. The trigger's polling is read traffic, so expect a steady trickle of
// StorageRead rows while the app runs.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!(empty(logAnalyticsWorkspaceId) || empty(queueNames))) {
  name: 'queue-to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output id string = storage.id
// The form CBTRADE_AZURE_ACCOUNT_URL documents: https://<account>.blob.<suffix>, no trailing slash.
output blobEndpoint string = 'https://${storage.name}.blob.${environment().suffixes.storage}'
