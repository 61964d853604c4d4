import numpy as np
import pytest
from satclip_tg_koppen import KOPPEN_GROUPS, KoppenTask, koppen_groups, plugin

from satclip_tg.plugins import Registry
from satclip_tg.testing import check_downstream_task, check_plugin


def climate(temperatures, precipitation):
    return np.asarray(temperatures, float)[:, None], np.asarray(precipitation, float)[
        :, None
    ]


@pytest.mark.parametrize(
    ('temperatures', 'precipitation', 'lat', 'group'),
    [
        ([27] * 12, [200] * 12, 1.3, 'A tropical'),  # Singapore-like
        ([14, 16, 19, 24, 28, 31, 32, 32, 29, 25, 19, 15], [5] * 12, 30.0, 'B arid'),
        ([5, 6, 8, 10, 14, 17, 19, 19, 16, 12, 8, 6], [60] * 12, 51.5, 'C temperate'),
        (
            [-9, -8, -2, 6, 13, 17, 19, 17, 11, 5, -1, -6],
            [50] * 12,
            55.8,
            'D continental',
        ),
        (
            [-28, -40, -54, -58, -58, -59, -60, -60, -58, -50, -38, -28],
            [1] * 12,
            -90.0,
            'E polar',
        ),
    ],
)
def test_reference_climates(temperatures, precipitation, lat, group) -> None:
    t, p = climate(temperatures, precipitation)
    assert KOPPEN_GROUPS[int(koppen_groups(t, p, np.array([lat]))[0])] == group


def test_dryness_threshold_depends_on_the_rainy_season() -> None:
    # MAT 20 deg C, so A unless arid. Dryness threshold: 40 mm with summer
    # rain, 54 with even rain, 68 with winter rain; the total is 600 mm.
    t = np.full((12, 1), 20.0)
    summer_rain = np.array([0, 0, 0, 100, 100, 100, 100, 100, 100, 0, 0, 0], float)[
        :, None
    ]
    winter_rain = 100.0 - summer_rain
    for rain, lat, expected in [
        (summer_rain, 10.0, 'A tropical'),  # 600 mm >= 10 * 40: not arid
        (winter_rain, 10.0, 'B arid'),  # 600 mm < 10 * 68
        (winter_rain, -10.0, 'A tropical'),  # those months are summer in the south
    ]:
        group = KOPPEN_GROUPS[int(koppen_groups(t, rain, np.array([lat]))[0])]
        assert group == expected, (lat, group)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r'\(12, N\)'):
        koppen_groups(np.zeros((11, 2)), np.zeros((11, 2)), np.zeros(2))


def test_plugin_passes_the_kit_and_registers() -> None:
    if KoppenTask().unavailable_reason() is None:
        # The kit loads the task's points, which needs the ERA5 data.
        check_plugin(plugin)
    registry = Registry(load_entry_points=False)
    registry.register(plugin, name='koppen')
    component = registry.get('downstream_task', 'koppen')
    assert component.factory is KoppenTask
    task = KoppenTask()
    assert task.task_type == 'classification' and task.num_classes == 5


def test_real_labels_when_the_data_is_installed() -> None:
    task = KoppenTask()
    reason = task.unavailable_reason()
    if reason is not None:
        pytest.skip(f'ERA5 climatology not installed: {reason}')
    check_downstream_task(task, num_points=64)
    cities = np.array(
        [[103.8, 1.35], [31.2, 30.0], [2.35, 48.86], [129.7, 62.0], [0.0, -89.9]]
    )
    labels, valid = task.label(cities)
    assert valid.all()
    assert [KOPPEN_GROUPS[i][0] for i in labels] == ['A', 'B', 'C', 'D', 'E']
