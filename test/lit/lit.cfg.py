import os
import lit.formats

config.name = "rule2xdp"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.rule2xdp_bin_dir, "test", "lit")
config.substitutions.append(("%rule2xdp", os.path.join(config.rule2xdp_bin_dir, "rule2xdp")))
config.substitutions.append(("%stats_pair", os.path.join(config.rule2xdp_bin_dir, "test", "stats_pair")))
config.substitutions.append(("FileCheck", config.filecheck))
config.environment["PATH"] = os.pathsep.join([config.rule2xdp_bin_dir, os.environ.get("PATH", "")])
