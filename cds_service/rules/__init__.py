from cds_service.rules.settings import RuleSettings


def evaluate(call, record, settings):
    return []
__all__ = ["RuleSettings", "evaluate"]
