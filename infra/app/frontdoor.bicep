// Optional Azure Front Door Standard in front of the function app (main.bicep: enableFrontDoor,
// off by default). After Azure-Samples/azure-quickstart-templates
// quickstarts/microsoft.cdn/front-door-standard-premium-function-public and
// front-door-standard-premium-rate-limit (profile, endpoint, origin group, origin, route, WAF
// policy, security policy), and the AVM module avm/res/cdn/profile (route: "to disable
// caching, do not provide a cacheConfiguration object"). See infra/README.md, "Optional: Azure
// Front Door in front of the API", for why caching is limited to the candle pages and opt-in.
param profileName string
param endpointName string
@description('Letters and digits only (Front Door WAF policy names allow nothing else).')
param wafPolicyName string
param tags object = {}

@description('Default host name of the function app (func-....azurewebsites.net): the one origin.')
param originHostName string

@description('Cache GET /api/v1/ohlcv at the edge, keyed by the full query string, honouring the origin\'s Cache-Control. Off: Front Door only proxies (TLS, WAF).')
param cachingEnabled bool = false

@description('Requests per client IP and minute before the WAF blocks that IP for the rest of the minute.')
@minValue(10)
param rateLimitPerMinute int = 1000

@description('Log Analytics workspace for the access, health probe and WAF logs; empty for none.')
param logAnalyticsWorkspaceId string = ''

// Paths a caller may use without a token (the app's own unauthenticated routes: health, the docs
// page and its assets, the spec). Everything else without an `Authorization: Bearer ...` header
// is refused by the WAF, so with caching on only token holders ever reach the cache. An asset's
// name has no slash, so no path climbs out of /api/docs/assets/. No backslashes: [.] and [?]
// keep the regex escape-free.
var anonymousPathsRegex = '^(https?://[^/]+)?/api/(health|docs(/assets/[a-z0-9.-]+)?|openapi[.]json)([?].*)?$'

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: profileName
  location: 'global'
  tags: tags
  sku: {
    name: 'Standard_AzureFrontDoor'
  }
  properties: {
    originResponseTimeoutSeconds: 120
  }
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: endpointName
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

// One origin. The probe asks HEAD /api/health (Front Door recommends HEAD; the app answers it
// with GET's status and no body) over HTTPS; every Front Door POP probes on its own, hence the
// long interval.
resource originGroup 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'api'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 50
    }
    healthProbeSettings: {
      probePath: '/api/health'
      probeRequestType: 'HEAD'
      probeProtocol: 'Https'
      probeIntervalInSeconds: 240
    }
    sessionAffinityState: 'Disabled'
  }
}

resource origin 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = {
  parent: originGroup
  name: 'function-app'
  properties: {
    hostName: originHostName
    originHostHeader: originHostName
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

// Everything under /api/: proxied, never cached (no cacheConfiguration). HTTP is redirected to
// HTTPS; Front Door reaches the app over HTTPS only.
resource apiRoute 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'api'
  properties: {
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Http'
      'Https'
    ]
    patternsToMatch: [
      '/api/*'
    ]
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    httpsRedirect: 'Enabled'
    enabledState: 'Enabled'
  }
  // The origin group must not be empty when a route refers to it (quickstart's note).
  dependsOn: [
    origin
  ]
}

// Only with cachingEnabled: the candle pages, the one path whose responses always carry a
// Cache-Control (public, max-age, immutable when sealed; private, no-cache otherwise). An exact
// path is more specific than /api/*, so Front Door picks this route for it. Every query string
// is its own cache entry; Front Door's cache key holds no request header (Authorization neither)
// and it does not vary by the Vary header: see infra/README.md.
resource candleRoute 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = if (cachingEnabled) {
  parent: endpoint
  name: 'candles'
  properties: {
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Http'
      'Https'
    ]
    patternsToMatch: [
      '/api/v1/ohlcv'
    ]
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    httpsRedirect: 'Enabled'
    enabledState: 'Enabled'
    cacheConfiguration: {
      queryStringCachingBehavior: 'UseQueryString'
      compressionSettings: {
        isCompressionEnabled: true
        contentTypesToCompress: [
          'application/json'
          'text/csv'
        ]
      }
    }
  }
  dependsOn: [
    origin
  ]
}

// Standard tier: custom rules only (managed rule sets need Premium).
resource wafPolicy 'Microsoft.Network/FrontDoorWebApplicationFirewallPolicies@2022-05-01' = {
  // checkov:skip=CKV_AZURE_133: The Log4j rule lives in the managed DefaultRuleSet, which needs the Premium tier; the origin is Python, not Java (checkov 3.3.30 keys this check to another spelling of the type and does not run it yet).
  name: wafPolicyName
  location: 'global'
  tags: tags
  sku: {
    name: 'Standard_AzureFrontDoor'
  }
  properties: {
    policySettings: {
      enabledState: 'Enabled'
      mode: 'Prevention'
    }
    customRules: {
      rules: [
        {
          // Per client IP. A rate-limit rule needs a match condition: "not in 192.0.2.0/24"
          // (TEST-NET-1, no real client) matches every request, as in the quickstart.
          name: 'RateLimitPerClientIp'
          priority: 10
          enabledState: 'Enabled'
          ruleType: 'RateLimitRule'
          rateLimitDurationInMinutes: 1
          rateLimitThreshold: rateLimitPerMinute
          action: 'Block'
          matchConditions: [
            {
              matchVariable: 'RemoteAddr'
              operator: 'IPMatch'
              negateCondition: true
              matchValue: [
                '192.0.2.0/24'
              ]
            }
          ]
        }
        {
          // No bearer token, no entry (except the anonymous paths): a cached candle page is
          // served only to a request that carries a token. The edge does not validate it.
          name: 'RequireBearerToken'
          priority: 20
          enabledState: 'Enabled'
          ruleType: 'MatchRule'
          action: 'Block'
          matchConditions: [
            {
              matchVariable: 'RequestHeader'
              selector: 'Authorization'
              operator: 'BeginsWith'
              negateCondition: true
              transforms: [
                'Lowercase'
              ]
              matchValue: [
                'bearer '
              ]
            }
            {
              matchVariable: 'RequestUri'
              operator: 'RegEx'
              negateCondition: true
              transforms: [
                'Lowercase'
              ]
              matchValue: [
                anonymousPathsRegex
              ]
            }
          ]
        }
      ]
    }
  }
}

resource securityPolicy 'Microsoft.Cdn/profiles/securityPolicies@2024-02-01' = {
  parent: profile
  name: 'waf'
  properties: {
    parameters: {
      type: 'WebApplicationFirewall'
      wafPolicy: {
        id: wafPolicy.id
      }
      associations: [
        {
          domains: [
            {
              id: endpoint.id
            }
          ]
          patternsToMatch: [
            '/*'
          ]
        }
      ]
    }
  }
}

// Access log (with each request's cache status), health probe log and WAF log.
resource profileDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'afd-to-log-analytics'
  scope: profile
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FrontDoorAccessLog'
        enabled: true
      }
      {
        category: 'FrontDoorHealthProbeLog'
        enabled: true
      }
      {
        category: 'FrontDoorWebApplicationFirewallLog'
        enabled: true
      }
    ]
  }
}

output profileName string = profile.name
output endpointName string = endpoint.name
output hostName string = endpoint.properties.hostName
output url string = 'https://${endpoint.properties.hostName}'
