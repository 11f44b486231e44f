"""Search indexes behind one interface (`cyz.index.base.Engine`); `open_engine` picks one."""
