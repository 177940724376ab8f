"""Where findings go besides the SNS topic and the archive: Slack, PagerDuty, a signed webhook, Security Hub,
EventBridge. Each destination is one module with the same interface (`base.Destination`); `build` makes one
from its `[destinations.<name>]` section (docs/destinations.md)."""
