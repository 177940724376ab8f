"""MITRE ATT&CK: the tactic each technique our rules name serves, for destinations that file findings by tactic
(Security Hub's finding types, OCSF's attacks)."""

from __future__ import annotations

TACTIC_NAMES = {
    "TA0001": "Initial Access",
    "TA0002": "Execution",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0008": "Lateral Movement",
    "TA0009": "Collection",
    "TA0010": "Exfiltration",
    "TA0011": "Command and Control",
    "TA0040": "Impact",
}

# Technique (without sub-technique) -> its primary tactic in the Enterprise/Cloud matrices.
_TACTIC_OF = {
    "T1020": "TA0010",
    "T1021": "TA0008",
    "T1040": "TA0006",
    "T1048": "TA0010",
    "T1059": "TA0002",
    "T1078": "TA0001",
    "T1087": "TA0007",
    "T1098": "TA0003",
    "T1110": "TA0006",
    "T1133": "TA0001",
    "T1136": "TA0003",
    "T1190": "TA0001",
    "T1201": "TA0007",
    "T1484": "TA0004",
    "T1485": "TA0040",
    "T1486": "TA0040",
    "T1489": "TA0040",
    "T1490": "TA0040",
    "T1496": "TA0040",
    "T1499": "TA0040",
    "T1525": "TA0003",
    "T1526": "TA0007",
    "T1529": "TA0040",
    "T1530": "TA0009",
    "T1531": "TA0040",
    "T1535": "TA0005",
    "T1537": "TA0010",
    "T1546": "TA0003",
    "T1548": "TA0004",
    "T1550": "TA0005",
    "T1552": "TA0006",
    "T1555": "TA0006",
    "T1556": "TA0006",
    "T1562": "TA0005",
    "T1567": "TA0010",
    "T1578": "TA0005",
    "T1580": "TA0007",
    "T1599": "TA0005",
    "T1621": "TA0006",
    "T1648": "TA0002",
    "T1651": "TA0002",
    "T1666": "TA0005",
}


TECHNIQUE_NAMES = {
    "T1020": "Automated Exfiltration",
    "T1021": "Remote Services",
    "T1040": "Network Sniffing",
    "T1048": "Exfiltration Over Alternative Protocol",
    "T1059": "Command and Scripting Interpreter",
    "T1078": "Valid Accounts",
    "T1087": "Account Discovery",
    "T1098": "Account Manipulation",
    "T1110": "Brute Force",
    "T1133": "External Remote Services",
    "T1136": "Create Account",
    "T1190": "Exploit Public-Facing Application",
    "T1201": "Password Policy Discovery",
    "T1484": "Domain or Tenant Policy Modification",
    "T1485": "Data Destruction",
    "T1486": "Data Encrypted for Impact",
    "T1489": "Service Stop",
    "T1490": "Inhibit System Recovery",
    "T1496": "Resource Hijacking",
    "T1499": "Endpoint Denial of Service",
    "T1525": "Implant Internal Image",
    "T1526": "Cloud Service Discovery",
    "T1529": "System Shutdown/Reboot",
    "T1530": "Data from Cloud Storage",
    "T1531": "Account Access Removal",
    "T1535": "Unused/Unsupported Cloud Regions",
    "T1537": "Transfer Data to Cloud Account",
    "T1546": "Event Triggered Execution",
    "T1548": "Abuse Elevation Control Mechanism",
    "T1550": "Use Alternate Authentication Material",
    "T1552": "Unsecured Credentials",
    "T1555": "Credentials from Password Stores",
    "T1556": "Modify Authentication Process",
    "T1562": "Impair Defenses",
    "T1567": "Exfiltration Over Web Service",
    "T1578": "Modify Cloud Compute Infrastructure",
    "T1580": "Cloud Infrastructure Discovery",
    "T1599": "Network Boundary Bridging",
    "T1621": "Multi-Factor Authentication Request Generation",
    "T1648": "Serverless Execution",
    "T1651": "Cloud Administration Command",
    "T1666": "Modify Cloud Resource Hierarchy",
}


def technique_name(technique: str) -> str:
    """The name of a technique ("T1098.003" -> that of T1098); the id itself if not known."""
    return TECHNIQUE_NAMES.get(technique.split(".")[0], technique)


def tactic(technique: str) -> tuple[str, str] | None:
    """(tactic id, tactic name) of a technique such as "T1098" or "T1098.003"; None if not known."""
    uid = _TACTIC_OF.get(technique.split(".")[0])
    return (uid, TACTIC_NAMES[uid]) if uid else None
