"""Words that carry no topic, shared by the consolidator (memory/) and the BM25 query builder
(index/): a plain table, so neither package imports the other."""

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just like me more
most my myself no nor not now of off on once only or other our ours ourselves out over own really
same she should so some such than that the their theirs them themselves then there these they this
those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves yeah yes ok okay oh lol haha hey hi hello thanks thank
got get going go gonna im i'm it's that's don't dont also well much many one know think
awesome great amazing cool nice wow glad sounds sound appreciate definitely anything around
something everything things thing lot let let's really totally super sure way time
""".split())
