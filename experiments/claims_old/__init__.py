"""The claims of the three source documents, and one module per experiment that measures them.

Every experiment module exposes ``NAME``, ``QUICK`` and ``FULL`` (its ``Config``)
and ``run(config, key, out, status) -> list[report.Claim]``; its verdict rules
live next to its measurements. The statements below are what is judged:
``C1``..``C12`` from the seed documents, then ``E1``.. from the papers behind
methods the library adds beyond them (their ``seed`` is empty, ``source`` names
the papers).
"""

from __future__ import annotations

from typing import NamedTuple


class Statement(NamedTuple):
    """A claim as the report states it: a title, the seed(s) it comes from, a short quote.

    A claim beyond the seed documents has ``seed=""``, its papers in ``source``
    (short form, for the summary table) and ``references`` (full), and a
    paraphrase of the papers' claim as its ``quote``.
    """

    title: str
    seed: str  # "000", "001", "002", or several joined by "+"; "" beyond the seeds
    quote: str
    source: str = ""
    references: tuple[str, ...] = ()


STATEMENTS = {
    "C1": Statement(
        "A small learning rate is slow, a large one oscillates or diverges", "000+001",
        '"If you pick a small learning rate, training will proceed slowly but surely ... if you '
        "pick a large learning rate, you could overshoot ... and get into an oscillating pattern "
        'where training never converges." (000)'),
    "C2": Statement(
        "Momentum speeds up progress along narrow valleys", "001+002",
        '"This can make the training process faster and more stable, especially for problems '
        'where the error surface has long, narrow valleys." (001)'),
    "C3": Statement(
        "Momentum around 0.9 works well; too close to 1 overshoots", "001",
        '"setting gamma to around 0.9 often works well ... But if it\'s too close to 1, the '
        'network might overshoot and miss the best solution."'),
    "C4": Statement(
        "Nesterov is faster and more stable than classical momentum", "001",
        '"By looking ahead, NAG can correct its course more effectively, leading to faster and '
        'more stable learning."'),
    "C5": Statement(
        "Momentum is a per-weight adaptive learning rate", "000",
        '"momentum is a technique that creates an adaptive learning rate, and one that varies for '
        'different weights."'),
    "C6": Statement(
        "Momentum rolls through small dips, and can roll past the global minimum", "001+000",
        '"It can also help avoid getting stuck in small dips along the way." (001) — "But that '
        "explanation doesn't fully explain why momentum wouldn't also jump over the global error "
        'minimum." (000)'),
    "C7": Statement(
        "EMA momentum equals momentum without (1 - b) at lr scaled by (1 - b)", "002",
        '"Another way to do it is by neglecting the (1- beta) term ... the only difference is '
        'that you need to scale learning rate by (1- beta) factor."'),
    "C8": Statement(
        "Momentum schedules: anneal 0.5 -> 0.9, or rise linearly to 1", "002+001",
        '"the value of momentum is usually initialized at around 0.5 and is slowly annealed to '
        '0.9" (002); "gamma_t = gamma_0 + (1 - gamma_0) t / T to increase gamma over time" (001)'),
    "C9": Statement(
        "Restarting momentum every k steps helps", "001",
        "\"You can also try using techniques like 'momentum restart.' This means resetting the "
        'momentum to zero at certain points during training ... every k steps."'),
    "C10": Statement(
        "Momentum combined with RMSprop or Adam learns faster", "001",
        '"By combining momentum with Adam or RMSprop, you get the smooth movement of momentum and '
        'the smart step adjustments of Adam or RMSprop. This can make the model learn faster."'),
    "C11": Statement(
        "An EMA of mini-batch gradients is closer to the full gradient", "002",
        '"Exponential moving average ... can provide us a better estimate which is closer to the '
        'actual derivative than our noisy calculations."'),
    "C12": Statement(
        "In a ravine the steep components cancel and the shallow ones add up", "002",
        '"If we will individually sum these vectors up, their components along the direction w1 '
        'cancel out, while the component along the w2 direction is reinforced."'),
    # ----------------------------------------------------------- beyond the seed documents
    "E1": Statement(
        "Adaptive restart rescues too much momentum", "",
        "With more momentum than the conditioning calls for, accelerated gradient methods "
        "oscillate and slow down. Restarting the momentum whenever the function value rises "
        "(function scheme) or the momentum points uphill against the gradient (gradient "
        "scheme) can recover the optimal linear rate without knowing the strong-convexity "
        "constant, and in their experiments does at least as well as restarting at the best "
        "fixed interval.",
        source="O'Donoghue & Candès 2015",
        references=("B. O'Donoghue, E. Candès, *Adaptive restart for accelerated gradient "
                    "schemes*, Foundations of Computational Mathematics 15, 2015.",)),
    "E2": Statement(
        "QHM, AggMo and Demon train faster than tuned heavy ball", "",
        "Each paper proposes a change to momentum SGD and reports faster or more stable "
        "training than momentum SGD at its tuned learning rate: quasi-hyperbolic momentum "
        "averages the gradient with its moving average, aggregated momentum averages several "
        "velocities with different decays, Demon decays the momentum to zero over training.",
        source="Ma & Yarats 2019; Lucas et al. 2019; Chen et al. (Demon)",
        references=("J. Ma, D. Yarats, *Quasi-hyperbolic momentum and Adam for deep learning*, "
                    "ICLR 2019.",
                    "J. Lucas, S. Sun, R. Zemel, R. Grosse, *Aggregated momentum: stability "
                    "through passive damping*, ICLR 2019.",
                    "J. Chen, C. Wolfe, A. Kyrillidis, *Demon: improved neural network "
                    "training with momentum decay*, ICASSP 2022.")),
}
